import NIOHTTP1

/// The headers the gateway acts on, found in one pass over the request
/// head instead of one case-insensitive scan per name.
struct RequestHeadInspector {
    var clientID = ""
    var profileID = ""
    var authorization = ""
    var requestID: String? = nil
    var forwardedFor: [Substring] = []
    var contentLength: Int? = nil
    var expectsContinue = false
    /// An identity or credential header sent twice: ambiguous, so refused
    /// rather than guessing which one the client meant.
    var duplicate: String? = nil
    /// Request line plus header lines, as SPEC §9 counts `max_header_bytes`.
    var headBytes = 0

    init(_ head: HTTPRequestHead) {
        self.headBytes = head.method.rawValue.utf8.count + 1 + head.uri.utf8.count + 1 + 8 + 2 + 2
        var seenClient = false
        var seenProfile = false
        var seenAuthorization = false
        for (name, value) in head.headers {
            self.headBytes += name.utf8.count + 2 + value.utf8.count + 2
            switch name.utf8.count {
            case 11 where Self.equals(name, "x-client-id"):
                if seenClient { self.duplicate = "X-Client-ID" }
                seenClient = true
                self.clientID = value
            case 12 where Self.equals(name, "x-profile-id"):
                if seenProfile { self.duplicate = "X-Profile-ID" }
                seenProfile = true
                self.profileID = value
            case 12 where Self.equals(name, "x-request-id"):
                if self.requestID == nil { self.requestID = value }
            case 13 where Self.equals(name, "authorization"):
                if seenAuthorization { self.duplicate = "Authorization" }
                seenAuthorization = true
                self.authorization = value
            case 14 where Self.equals(name, "content-length"):
                self.contentLength = Int(value)
            case 15 where Self.equals(name, "x-forwarded-for"):
                self.forwardedFor.append(Substring(value))
            case 6 where Self.equals(name, "expect"):
                self.expectsContinue = value.lowercased() == "100-continue"
            default:
                break
            }
        }
    }

    /// ASCII case-insensitive comparison against a lower-case literal.
    @inline(__always)
    static func equals(_ name: String, _ lower: StaticString) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            guard bytes.count == lower.utf8CodeUnitCount else { return false }
            let expected = lower.utf8Start
            for index in 0..<bytes.count {
                var c = bytes[index]
                if c >= 0x41 && c <= 0x5A { c |= 0x20 }
                if c != expected[index] { return false }
            }
            return true
        }
    }
}

/// Request-target checks done before a worker is asked anything.
enum RequestTarget {
    /// Origin-form path and query; absolute-form (`http://host/path`) is
    /// reduced to its path. nil when the target is neither.
    static func originForm(_ uri: String) -> String? {
        if uri.hasPrefix("/") { return uri }
        for scheme in ["http://", "https://"] where uri.lowercased().hasPrefix(scheme) {
            let rest = uri.dropFirst(scheme.count)
            guard let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
            let target = rest[slash...]
            return target.first == "?" ? "/" + target : String(target)
        }
        return nil
    }

    /// True when the path holds a `.` or `..` segment (also percent-encoded).
    /// Such paths are refused: routing matches prefixes on the raw path,
    /// and an upstream that resolves `/orders/../admin` would otherwise be
    /// reached through the `/orders` route.
    static func hasDotSegment(_ target: String) -> Bool {
        let pathEnd = target.utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) ?? target.utf8.endIndex
        let path = target[..<pathEnd]
        guard path.contains(".") || path.contains("%") else { return false }
        for segment in path.split(separator: "/", omittingEmptySubsequences: false) {
            let lowered = segment.lowercased().replacingOccurrences(of: "%2e", with: ".")
            if lowered == "." || lowered == ".." { return true }
        }
        return false
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard self.contains(target) else { return self }
        return self.split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
