import NIOHTTP1
import Shared

/// Everything the router knows about where an allowed request goes.
struct UpstreamRoute: Sendable {
    let collectionID: String
    let url: UpstreamURL
    let timeoutMs: Int
    let keepAuthorization: Bool
    let credential: ResolvedCredential?
}

/// Builds the request head sent upstream from the client's (SPEC §2, §9):
/// hop-by-hop headers dropped, `Authorization` removed unless the collection
/// keeps it, client-sent `X-Consumer-*` replaced by ours, `X-Request-ID`
/// set, the backend credential replacing any client header of that name,
/// and the path stripped of the route prefix when the route says so.
enum UpstreamRequestBuilder {
    /// RFC 9110 §7.6.1 hop-by-hop fields, plus the legacy ones proxies drop.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization",
    ]

    struct Identity {
        let requestID: String
        let clientID: String
        let profileID: String
        let peer: IPAddress?
        let peerTrusted: Bool
    }

    static func build(client head: HTTPRequestHead, route: UpstreamRoute, stripPrefixBytes: Int, identity: Identity, target: String) -> HTTPRequestHead {
        var connectionTokens: Set<String> = []
        for value in head.headers["connection"] {
            for token in value.split(separator: ",") { connectionTokens.insert(token.trimmingSpaces().lowercased()) }
        }
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 6)
        var originalHost: String? = nil
        var forwardedFor: [String] = []
        let credentialName = route.credential?.header.lowercased()
        for (name, value) in head.headers {
            let lower = name.lowercased()
            if hopByHop.contains(lower) || connectionTokens.contains(lower) { continue }
            switch lower {
            case "host":
                originalHost = value
                continue
            case "authorization" where !route.keepAuthorization:
                continue
            case "x-request-id", "expect":
                continue
            case "x-forwarded-for":
                // Only a trusted proxy's chain is extended; from anyone else
                // the header is a claim we do not pass on as fact.
                if identity.peerTrusted { forwardedFor.append(value) }
                continue
            default:
                if lower.hasPrefix("x-consumer-") { continue }
                if let credentialName, lower == credentialName { continue }
            }
            headers.add(name: name, value: value)
        }
        headers.add(name: "Host", value: route.url.authority)
        if let peer = identity.peer { forwardedFor.append(peer.description) }
        if !forwardedFor.isEmpty { headers.add(name: "X-Forwarded-For", value: forwardedFor.joined(separator: ", ")) }
        if let originalHost, !headers.contains(name: "x-forwarded-host") {
            headers.add(name: "X-Forwarded-Host", value: originalHost)
        }
        if !headers.contains(name: "x-forwarded-proto") { headers.add(name: "X-Forwarded-Proto", value: "http") }
        headers.add(name: "X-Request-ID", value: identity.requestID)
        headers.add(name: "X-Consumer-Client-ID", value: identity.clientID)
        headers.add(name: "X-Consumer-Profile-ID", value: identity.profileID)
        if let credential = route.credential { headers.add(name: credential.header, value: credential.value) }

        return HTTPRequestHead(
            version: .http1_1, method: head.method,
            uri: self.upstreamTarget(target, basePath: route.url.basePath, stripPrefixBytes: stripPrefixBytes),
            headers: headers)
    }

    /// Path and query as received, minus a stripped prefix, under the
    /// upstream URL's base path.
    static func upstreamTarget(_ target: String, basePath: String, stripPrefixBytes: Int) -> String {
        var rest = Substring(target)
        if stripPrefixBytes > 0, target.utf8.count >= stripPrefixBytes {
            rest = Substring(target.utf8.dropFirst(stripPrefixBytes))
            if rest.isEmpty || rest.first == "?" { rest = "/" + rest }
        }
        return basePath.isEmpty ? String(rest) : basePath + rest
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}
