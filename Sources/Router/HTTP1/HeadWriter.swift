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
    /// From the name the parser recognised.
    func role(of field: HTTPField) -> FieldRole {
        switch field.name {
        case .te, .trailer, .upgrade, .connection, .keepAlive, .proxyConnection, .proxyAuthenticate, .proxyAuthorization:
            return .hopByHop
        case .host: return .host
        case .expect: return .expect
        case .rateLimit, .rateLimitPolicy: return .rateLimit
        case .xRequestID: return .requestID
        case .authorization: return .authorization
        case .xForwardedFor: return .forwardedFor
        case .xForwardedHost: return .forwardedHost
        case .xForwardedProto: return .forwardedProto
        case .transferEncoding: return .transferEncoding
        case .xSSLClientSubject, .xSSLClientVerify, .xSSLClientFingerprint, .xForwardedClientCert: return .clientCert
        case .strictTransportSecurity: return .strictTransportSecurity
        case .xConsumer: return .consumer
        case .contentLength, .xClientID, .xProfileID, .other: return .other
        }
    }

    /// Names listed in `Connection` besides close/keep-alive: hop-by-hop
    /// by declaration (RFC 9110 §7.6.1). Usually empty.
    func connectionListedNames() -> [[UInt8]] {
        var names: [[UInt8]] = []
        for field in self.fields where field.name == .connection {
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

/// Text a head writer copies: bytes of the request head (offsets into
/// it, as the parser found them) or a string of the gateway's own. The
/// request path passes header values as offsets so that none of them
/// becomes a `String` just to be copied back into bytes.
enum HeadText: Equatable {
    case head(Range<Int>)
    case text(String)

    static let empty = HeadText.head(0..<0)
}

extension HTTPHead {
    func write(_ text: HeadText, into out: inout ByteWriter) {
        switch text {
        case .head(let range): self.write(range, into: &out)
        case .text(let string): out.write(string)
        }
    }

    func count(_ text: HeadText) -> Int {
        switch text {
        case .head(let range): return range.count
        case .text(let string): return string.utf8.count
        }
    }

    /// The text's bytes, valid for the call (empty for offsets outside the head).
    func withBytes<R>(_ text: HeadText, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch text {
        case .head(let range):
            return self.bytes.withUnsafeReadableBytes { raw in
                guard range.lowerBound >= 0, range.upperBound <= raw.count else { return body(UnsafeRawBufferPointer(start: nil, count: 0)) }
                return body(UnsafeRawBufferPointer(rebasing: raw[range]))
            }
        case .text(var string):
            return string.withUTF8 { body(UnsafeRawBufferPointer($0)) }
        }
    }

    func string(_ text: HeadText) -> String {
        switch text {
        case .head(let range): return self.string(range)
        case .text(let string): return string
        }
    }
}

/// Copies the fields a head writer keeps as they were received, a run of
/// consecutive kept lines at a time. Field lines are contiguous in the head
/// and already checked against the grammar, so a run is one copy, where
/// rewriting each field was four (name, ": ", value, CRLF).
struct FieldRuns {
    /// Where the current run of kept lines starts in the head.
    private var start: Int? = nil

    mutating func take(_ field: HTTPField, keep: Bool, of head: HTTPHead, into out: inout ByteWriter) {
        if keep {
            if self.start == nil { self.start = Int(field.nameStart) }
        } else {
            self.flush(upTo: Int(field.nameStart), of: head, into: &out)
        }
    }

    /// After the last field: the run ends where the head's blank line starts.
    mutating func finish(_ head: HTTPHead, into out: inout ByteWriter) {
        self.flush(upTo: head.bytes.readableBytes - 2, of: head, into: &out)
    }

    private mutating func flush(upTo end: Int, of head: HTTPHead, into out: inout ByteWriter) {
        guard let start = self.start else { return }
        self.start = nil
        if start < end { head.write(start..<end, into: &out) }
    }
}

/// Who is calling, for the headers the gateway adds upstream.
struct ForwardingIdentity {
    let requestID: RequestID
    let clientID: HeadText
    let profileID: HeadText
    let peerTrusted: Bool
    /// The TCP peer as text for X-Forwarded-For; connections format it
    /// once and pass it in.
    let peerText: String

    init(requestID: RequestID, clientID: HeadText, profileID: HeadText, peer: IPAddress?, peerTrusted: Bool, peerText: String? = nil) {
        self.requestID = requestID
        self.clientID = clientID
        self.profileID = profileID
        self.peerTrusted = peerTrusted
        self.peerText = peerText ?? peer?.description ?? "unknown"
    }
}

/// Where an allowed request goes on its upstream: its own target (path and
/// query), minus a stripped route prefix, under the upstream URL's base path.
struct UpstreamTarget {
    let path: HeadText
    let stripPrefixBytes: Int

    /// Writes base path + the rest of `path` after the stripped prefix; a
    /// rest that is empty or only a query gets the "/" a path needs.
    static func write(path: UnsafeRawBufferPointer, basePath: String, stripPrefixBytes: Int, into out: inout ByteWriter) {
        out.write(basePath)
        var rest = path
        if stripPrefixBytes > 0, path.count >= stripPrefixBytes {
            rest = UnsafeRawBufferPointer(rebasing: path[stripPrefixBytes...])
            if rest.isEmpty || rest.first == UInt8(ascii: "?") { out.write(byte: UInt8(ascii: "/")) }
        }
        out.write(rest)
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
        _ head: HTTPHead, target: UpstreamTarget, route: UpstreamRoute, identity: ForwardingIdentity, into out: inout ByteBuffer
    ) {
        var bound = head.rewrittenBound + head.count(target.path) + route.url.basePath.utf8.count + route.url.authority.utf8.count
        bound += identity.peerText.utf8.count + identity.requestID.utf8Count + head.count(identity.clientID)
        bound += head.count(identity.profileID) + 192
        if let credential = route.credential { bound += credential.header.utf8.count + credential.value.utf8.count + 4 }
        out.writeBytes(reserving: bound) { out in
            self.upstreamRequest(head, target: target, route: route, identity: identity, into: &out)
        }
    }

    private static func upstreamRequest(
        _ head: HTTPHead, target: UpstreamTarget, route: UpstreamRoute, identity: ForwardingIdentity, into out: inout ByteWriter
    ) {
        if case .request(let method, _) = head.startLine { head.write(method, into: &out) }
        out.write(byte: UInt8(ascii: " "))
        head.withBytes(target.path) { path in
            UpstreamTarget.write(path: path, basePath: route.url.basePath, stripPrefixBytes: target.stripPrefixBytes, into: &out)
        }
        out.write(" HTTP/1.1\r\n")
        let listed = head.connectionListedNames()
        let credentialName = route.credentialNameLowercased
        var originalHost: HTTPField? = nil
        var trustedForwardedFor: [HTTPField] = []
        var keepsForwardedHost = false
        var keepsForwardedProto = false
        var runs = FieldRuns()
        for field in head.fields {
            // Whether the field goes upstream as the client sent it.
            let keep: Bool
            if !listed.isEmpty && head.isListed(field, in: listed) {
                keep = false
            } else if let credentialName, head.nameIs(field, lowercased: credentialName) {
                keep = false
            } else {
                switch head.role(of: field) {
                case .hopByHop, .requestID, .expect, .consumer, .rateLimit:
                    keep = false
                case .host:
                    if originalHost == nil { originalHost = field }
                    keep = false
                case .authorization:
                    keep = route.keepAuthorization
                case .forwardedFor:
                    // Extended only when a trusted proxy wrote it; from anyone
                    // else it is a claim the upstream should not read as fact.
                    if identity.peerTrusted { trustedForwardedFor.append(field) }
                    keep = false
                case .forwardedHost:
                    keep = identity.peerTrusted
                    keepsForwardedHost = keep
                case .forwardedProto:
                    keep = identity.peerTrusted
                    keepsForwardedProto = keep
                case .clientCert:
                    // From an untrusted peer these are forgeries: never passed on.
                    keep = identity.peerTrusted
                case .transferEncoding, .strictTransportSecurity, .other:
                    keep = true
                }
            }
            runs.take(field, keep: keep, of: head, into: &out)
        }
        runs.finish(head, into: &out)
        out.write("Host: ")
        out.write(route.url.authority)
        out.write("\r\nX-Forwarded-For: ")
        for field in trustedForwardedFor {
            head.write(Int(field.valueStart)..<Int(field.valueEnd), into: &out)
            out.write(", ")
        }
        out.write(identity.peerText)
        if !keepsForwardedHost, let host = originalHost {
            out.write("\r\nX-Forwarded-Host: ")
            head.write(Int(host.valueStart)..<Int(host.valueEnd), into: &out)
        }
        if !keepsForwardedProto { out.write("\r\nX-Forwarded-Proto: http") }
        out.write("\r\nX-Request-ID: ")
        out.write(identity.requestID)
        out.write("\r\nX-Consumer-Client-ID: ")
        head.write(identity.clientID, into: &out)
        out.write("\r\nX-Consumer-Profile-ID: ")
        head.write(identity.profileID, into: &out)
        if let credential = route.credential {
            out.write("\r\n")
            out.write(credential.header)
            out.write(": ")
            out.write(credential.value)
        }
        out.write("\r\n\r\n")
    }

    /// The response head sent to the client for an upstream response.
    static func clientResponse(
        _ head: HTTPHead, clientMinorVersion: Int, requestID: RequestID, rateLimitPolicy: String, rateLimit: RateLimitValue?,
        dropTransferEncoding: Bool, connection: ConnectionHeader, hsts: Bool = false, into out: inout ByteBuffer
    ) {
        let bound = head.rewrittenBound + self.gatewayFieldsBound(requestID: requestID, rateLimitPolicy: rateLimitPolicy, rateLimit: rateLimit) + 64
        out.writeBytes(reserving: bound) { out in
            out.write(clientMinorVersion == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
            out.write(decimal: head.status)
            out.write(byte: UInt8(ascii: " "))
            if case .response(_, let reason) = head.startLine, !reason.isEmpty {
                head.write(reason, into: &out)
            } else {
                out.write(HTTPStatusText.reason(head.status))
            }
            out.write("\r\n")
            let listed = head.connectionListedNames()
            var runs = FieldRuns()
            for field in head.fields {
                let keep: Bool
                if !listed.isEmpty && head.isListed(field, in: listed) {
                    keep = false
                } else {
                    switch head.role(of: field) {
                    case .hopByHop, .requestID, .rateLimit: keep = false
                    case .strictTransportSecurity where hsts: keep = false  // ours replaces the upstream's on TLS connections
                    case .transferEncoding where dropTransferEncoding: keep = false
                    default: keep = true
                    }
                }
                runs.take(field, keep: keep, of: head, into: &out)
            }
            runs.finish(head, into: &out)
            self.gatewayFields(
                requestID: requestID, rateLimitPolicy: rateLimitPolicy, rateLimit: rateLimit, connection: connection, hsts: hsts,
                into: &out)
            out.write("\r\n")
        }
    }

    enum ConnectionHeader {
        case none
        case close
        case keepAlive
    }

    /// A response the gateway writes itself, with the SPEC §2 JSON body.
    static func localResponse(
        _ error: GatewayError, requestID: RequestID, clientMinorVersion: Int, rateLimitPolicy: String = "", rateLimit: RateLimitValue? = nil,
        connection: ConnectionHeader, hsts: Bool = false, into out: inout ByteBuffer
    ) {
        let body = error.jsonBody(requestID: requestID.string)
        let bodyBytes = body.utf8.count
        var bound = bodyBytes + self.gatewayFieldsBound(requestID: requestID, rateLimitPolicy: rateLimitPolicy, rateLimit: rateLimit) + 160
        bound += error.allow?.utf8.count ?? 0
        out.writeBytes(reserving: bound) { out in
            out.write(clientMinorVersion == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
            out.write(decimal: error.status)
            out.write(byte: UInt8(ascii: " "))
            out.write(HTTPStatusText.reason(error.status))
            out.write("\r\nContent-Type: application/json\r\nContent-Length: ")
            out.write(decimal: bodyBytes)
            if let retry = error.retryAfterSeconds, retry > 0 {
                out.write("\r\nRetry-After: ")
                out.write(decimal: retry)
            }
            if let allow = error.allow {
                out.write("\r\nAllow: ")
                out.write(allow)
            }
            out.write("\r\n")
            self.gatewayFields(
                requestID: requestID, rateLimitPolicy: rateLimitPolicy, rateLimit: rateLimit, connection: connection, hsts: hsts,
                into: &out)
            out.write("\r\n")
            out.write(body)
        }
    }

    /// Upper bound of what `gatewayFields` writes.
    private static func gatewayFieldsBound(requestID: RequestID, rateLimitPolicy: String, rateLimit: RateLimitValue?) -> Int {
        requestID.utf8Count + rateLimitPolicy.utf8.count + (rateLimit?.maxBytes ?? 0) + 160
    }

    private static func gatewayFields(
        requestID: RequestID, rateLimitPolicy: String, rateLimit: RateLimitValue?, connection: ConnectionHeader, hsts: Bool,
        into out: inout ByteWriter
    ) {
        out.write("X-Request-ID: ")
        out.write(requestID)
        out.write("\r\n")
        // SPEC §9: every response on the TLS listener tells browsers to
        // stay on HTTPS for a year.
        if hsts { out.write("Strict-Transport-Security: max-age=31536000\r\n") }
        if !rateLimitPolicy.isEmpty {
            out.write("RateLimit-Policy: ")
            out.write(rateLimitPolicy)
            out.write("\r\n")
        }
        if let rateLimit {
            out.write("RateLimit: ")
            rateLimit.write(into: &out)
            out.write("\r\n")
        }
        switch connection {
        case .none: break
        case .close: out.write("Connection: close\r\n")
        case .keepAlive: out.write("Connection: keep-alive\r\n")
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
