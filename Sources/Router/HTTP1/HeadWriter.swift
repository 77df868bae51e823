import NIOCore
import Shared

/// How the proxy treats a header field it passes on.
enum FieldRole {
    case hopByHop
    case host
    case authorization
    case requestID
    case expect
    case forwardedFor
    case forwardedHost
    case forwardedProto
    case consumer
    case transferEncoding
    case rateLimit
    /// Verified-certificate headers of an ingress proxy.
    case clientCert
    case strictTransportSecurity
    case other
}

extension HTTPHead {
    /// One pass of length-bucketed comparisons per field.
    func role(of field: HTTPField) -> FieldRole {
        switch field.nameEnd - field.nameStart {
        case 2:
            if self.nameIs(field, "te") { return .hopByHop }
        case 4:
            if self.nameIs(field, "host") { return .host }
        case 6:
            if self.nameIs(field, "expect") { return .expect }
        case 7:
            if self.nameIs(field, "trailer") || self.nameIs(field, "upgrade") { return .hopByHop }
        case 9:
            if self.nameIs(field, "ratelimit") { return .rateLimit }
        case 10:
            if self.nameIs(field, "connection") || self.nameIs(field, "keep-alive") { return .hopByHop }
        case 12:
            if self.nameIs(field, "x-request-id") { return .requestID }
        case 13:
            if self.nameIs(field, "authorization") { return .authorization }
        case 15:
            if self.nameIs(field, "x-forwarded-for") { return .forwardedFor }
        case 16:
            if self.nameIs(field, "x-forwarded-host") { return .forwardedHost }
            if self.nameIs(field, "proxy-connection") { return .hopByHop }
            if self.nameIs(field, "ratelimit-policy") { return .rateLimit }
        case 17:
            if self.nameIs(field, "x-forwarded-proto") { return .forwardedProto }
            if self.nameIs(field, "transfer-encoding") { return .transferEncoding }
            if self.nameIs(field, "x-ssl-client-s-dn") { return .clientCert }
        case 18:
            if self.nameIs(field, "proxy-authenticate") { return .hopByHop }
        case 19:
            if self.nameIs(field, "proxy-authorization") { return .hopByHop }
            if self.nameIs(field, "x-ssl-client-verify") { return .clientCert }
        case 23:
            if self.nameIs(field, "x-forwarded-client-cert") { return .clientCert }
        case 25:
            if self.nameIs(field, "strict-transport-security") { return .strictTransportSecurity }
        case 24:
            if self.nameIs(field, "x-ssl-client-fingerprint") { return .clientCert }
        default:
            break
        }
        if field.nameEnd - field.nameStart > 11 && self.hasPrefix(field, "x-consumer-") { return .consumer }
        return .other
    }

    private func hasPrefix(_ field: HTTPField, _ lower: StaticString) -> Bool {
        self.bytes.withUnsafeReadableBytes { raw in
            for index in 0..<lower.utf8CodeUnitCount where raw[Int(field.nameStart) + index] | 0x20 != lower.utf8Start[index] {
                return false
            }
            return true
        }
    }

    /// Names listed in `Connection` besides close/keep-alive: hop-by-hop
    /// by declaration (RFC 9110 §7.6.1). Usually empty.
    func connectionListedNames() -> [[UInt8]] {
        var names: [[UInt8]] = []
        for field in self.fields where self.nameIs(field, "connection") {
            // The common values, compared in place without building strings.
            if self.valueIs(field, "keep-alive") || self.valueIs(field, "close") { continue }
            for token in self.value(field).split(separator: ",") {
                let name = token.trimmingSpaces().lowercased()
                if name != "close" && name != "keep-alive" && !name.isEmpty { names.append(Array(name.utf8)) }
            }
        }
        return names
    }

    func isListed(_ field: HTTPField, in names: [[UInt8]]) -> Bool {
        for name in names where self.nameIs(field, lowercased: name) { return true }
        return false
    }
}

/// Who is calling, for the headers the gateway adds upstream.
struct ForwardingIdentity {
    let requestID: String
    let clientID: String
    let profileID: String
    let peerTrusted: Bool
    /// The TCP peer as text for X-Forwarded-For; connections format it
    /// once and pass it in.
    let peerText: String

    init(requestID: String, clientID: String, profileID: String, peer: IPAddress?, peerTrusted: Bool, peerText: String? = nil) {
        self.requestID = requestID
        self.clientID = clientID
        self.profileID = profileID
        self.peerTrusted = peerTrusted
        self.peerText = peerText ?? peer?.description ?? "unknown"
    }
}

enum HeadWriter {
    /// The request head sent upstream (SPEC §2, §9): hop-by-hop fields and
    /// the client's `Authorization` (unless the collection keeps it) dropped,
    /// client-sent `X-Consumer-*` replaced, `X-Request-ID` set, the backend
    /// credential replacing any client header of that name, `Host` set to the
    /// upstream. The body keeps its framing, so `Content-Length` and
    /// `Transfer-Encoding` pass through.
    static func upstreamRequest(
        _ head: HTTPHead, method: String, target: String, route: UpstreamRoute, identity: ForwardingIdentity,
        into out: inout ByteBuffer
    ) {
        out.writeString(method)
        out.writeStaticString(" ")
        out.writeString(target)
        out.writeStaticString(" HTTP/1.1\r\n")
        let listed = head.connectionListedNames()
        let credentialName = route.credentialNameLowercased
        var originalHost: HTTPField? = nil
        var trustedForwardedFor: [HTTPField] = []
        var keepsForwardedHost = false
        var keepsForwardedProto = false
        for field in head.fields {
            if !listed.isEmpty && head.isListed(field, in: listed) { continue }
            if let credentialName, head.nameIs(field, lowercased: credentialName) { continue }
            switch head.role(of: field) {
            case .hopByHop, .requestID, .expect, .consumer, .rateLimit:
                continue
            case .host:
                if originalHost == nil { originalHost = field }
                continue
            case .authorization:
                if !route.keepAuthorization { continue }
            case .forwardedFor:
                // Extended only when a trusted proxy wrote it; from anyone
                // else it is a claim the upstream should not read as fact.
                if identity.peerTrusted { trustedForwardedFor.append(field) }
                continue
            case .forwardedHost:
                guard identity.peerTrusted else { continue }
                keepsForwardedHost = true
            case .forwardedProto:
                guard identity.peerTrusted else { continue }
                keepsForwardedProto = true
            case .clientCert:
                // From an untrusted peer these are forgeries: never passed on.
                guard identity.peerTrusted else { continue }
            case .transferEncoding, .strictTransportSecurity, .other:
                break
            }
            head.writeField(field, into: &out)
        }
        out.writeStaticString("Host: ")
        out.writeString(route.url.authority)
        out.writeStaticString("\r\nX-Forwarded-For: ")
        for field in trustedForwardedFor {
            head.write(Int(field.valueStart)..<Int(field.valueEnd), into: &out)
            out.writeStaticString(", ")
        }
        out.writeString(identity.peerText)
        if !keepsForwardedHost, let host = originalHost {
            out.writeStaticString("\r\nX-Forwarded-Host: ")
            head.write(Int(host.valueStart)..<Int(host.valueEnd), into: &out)
        }
        if !keepsForwardedProto { out.writeStaticString("\r\nX-Forwarded-Proto: http") }
        out.writeStaticString("\r\nX-Request-ID: ")
        out.writeString(identity.requestID)
        out.writeStaticString("\r\nX-Consumer-Client-ID: ")
        out.writeString(identity.clientID)
        out.writeStaticString("\r\nX-Consumer-Profile-ID: ")
        out.writeString(identity.profileID)
        if let credential = route.credential {
            out.writeStaticString("\r\n")
            out.writeString(credential.header)
            out.writeStaticString(": ")
            out.writeString(credential.value)
        }
        out.writeStaticString("\r\n\r\n")
    }

    /// The response head sent to the client for an upstream response.
    static func clientResponse(
        _ head: HTTPHead, clientMinorVersion: Int, requestID: String, rateLimitPolicy: String, rateLimit: String,
        dropTransferEncoding: Bool, connection: ConnectionHeader, hsts: Bool = false, into out: inout ByteBuffer
    ) {
        out.writeStaticString(clientMinorVersion == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        out.writeString(String(head.status))
        out.writeStaticString(" ")
        if case .response(_, let reason) = head.startLine, !reason.isEmpty {
            head.write(reason, into: &out)
        } else {
            out.writeString(HTTPStatusText.reason(head.status))
        }
        out.writeStaticString("\r\n")
        let listed = head.connectionListedNames()
        for field in head.fields {
            if !listed.isEmpty && head.isListed(field, in: listed) { continue }
            switch head.role(of: field) {
            case .hopByHop, .requestID, .rateLimit:
                continue
            case .strictTransportSecurity where hsts:
                continue  // ours replaces the upstream's on TLS connections
            case .transferEncoding where dropTransferEncoding:
                continue
            default:
                head.writeField(field, into: &out)
            }
        }
        self.gatewayFields(
            requestID: requestID, rateLimitPolicy: rateLimitPolicy, rateLimit: rateLimit, connection: connection, hsts: hsts, into: &out)
        out.writeStaticString("\r\n")
    }

    enum ConnectionHeader {
        case none
        case close
        case keepAlive
    }

    /// A response the gateway writes itself, with the SPEC §2 JSON body.
    static func localResponse(
        _ error: GatewayError, requestID: String, clientMinorVersion: Int, rateLimitPolicy: String = "", rateLimit: String = "",
        connection: ConnectionHeader, hsts: Bool = false, into out: inout ByteBuffer
    ) {
        let body = error.jsonBody(requestID: requestID)
        out.writeStaticString(clientMinorVersion == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        out.writeString(String(error.status))
        out.writeStaticString(" ")
        out.writeString(HTTPStatusText.reason(error.status))
        out.writeStaticString("\r\nContent-Type: application/json\r\nContent-Length: ")
        out.writeString(String(body.utf8.count))
        if let retry = error.retryAfterSeconds, retry > 0 {
            out.writeStaticString("\r\nRetry-After: ")
            out.writeString(String(retry))
        }
        if let allow = error.allow {
            out.writeStaticString("\r\nAllow: ")
            out.writeString(allow)
        }
        out.writeStaticString("\r\n")
        self.gatewayFields(
            requestID: requestID, rateLimitPolicy: rateLimitPolicy, rateLimit: rateLimit, connection: connection, hsts: hsts, into: &out)
        out.writeStaticString("\r\n")
        out.writeString(body)
    }

    private static func gatewayFields(
        requestID: String, rateLimitPolicy: String, rateLimit: String, connection: ConnectionHeader, hsts: Bool,
        into out: inout ByteBuffer
    ) {
        out.writeStaticString("X-Request-ID: ")
        out.writeString(requestID)
        out.writeStaticString("\r\n")
        // SPEC §9: every response on the TLS listener tells browsers to
        // stay on HTTPS for a year.
        if hsts { out.writeStaticString("Strict-Transport-Security: max-age=31536000\r\n") }
        if !rateLimitPolicy.isEmpty {
            out.writeStaticString("RateLimit-Policy: ")
            out.writeString(rateLimitPolicy)
            out.writeStaticString("\r\nRateLimit: ")
            out.writeString(rateLimit)
            out.writeStaticString("\r\n")
        }
        switch connection {
        case .none: break
        case .close: out.writeStaticString("Connection: close\r\n")
        case .keepAlive: out.writeStaticString("Connection: keep-alive\r\n")
        }
    }
}

enum HTTPStatusText {
    static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 413: return "Content Too Large"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
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
