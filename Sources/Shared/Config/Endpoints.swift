/// `host:port` as written in `listen`, `admin_listen`, `tls.listen`.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `0.0.0.0:8080`, `[::]:8080`, `localhost:8080`; port 0 picks a free one.
    public init?(_ text: String) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (0...65535).contains(port),
                IPAddress(host) != nil
            else { return nil }
            self.init(host: host, port: port)
            return
        }
        guard let colon = text.lastIndex(of: ":") else { return nil }
        let host = String(text[..<colon])
        guard !host.isEmpty, !host.contains(":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
        else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}

/// An upstream base URL: `http://host[:port][/base/path]`.
public struct UpstreamURL: Sendable, Equatable, Hashable, CustomStringConvertible {
    public let host: String
    public let port: Int
    /// Prepended to the request path; "" or starts with "/" and has no trailing "/".
    public let basePath: String
    /// The `Host` header value for upstream requests; computed once, it is
    /// written on every proxied request.
    public let authority: String

    public init?(_ text: String) {
        guard text.hasPrefix("http://") else { return nil }
        let rest = text.dropFirst("http://".count)
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<authorityEnd])
        var path = String(rest[authorityEnd...])
        guard !authority.isEmpty, !authority.contains("@"), !path.contains("?"), !path.contains("#") else { return nil }
        while path.hasSuffix("/") { path.removeLast() }
        if let parsed = HostPort(authority) {
            self.host = parsed.host
            self.port = parsed.port
        } else if !authority.contains(":") || (authority.hasPrefix("[") && authority.hasSuffix("]")) {
            self.host = authority.hasPrefix("[") ? String(authority.dropFirst().dropLast()) : authority
            self.port = 80
        } else {
            return nil
        }
        guard self.port > 0 else { return nil }
        self.basePath = path
        let bracketed = self.host.utf8.contains(UInt8(ascii: ":")) ? "[\(self.host)]" : self.host
        self.authority = self.port == 80 ? bracketed : "\(bracketed):\(self.port)"
    }

    public var description: String { "http://\(self.authority)\(self.basePath)" }
}

/// A URL the gateway fetches itself: an OIDC discovery document or a JWKS.
/// `https://` anywhere; plain `http://` only to loopback (SPEC §9), so keys
/// never travel unauthenticated over a network.
public struct FetchURL: Sendable, Equatable, Hashable, CustomStringConvertible {
    public let secure: Bool
    public let host: String
    public let port: Int
    /// Path and query, at least "/".
    public let target: String

    public init?(_ text: String) {
        let rest: Substring
        if text.hasPrefix("https://") {
            self.secure = true
            rest = text.dropFirst("https://".count)
        } else if text.hasPrefix("http://") {
            self.secure = false
            rest = text.dropFirst("http://".count)
        } else {
            return nil
        }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = String(rest[..<authorityEnd])
        var target = String(rest[authorityEnd...])
        guard !authority.isEmpty, !authority.contains("@"), !target.contains("#"), !text.contains(" ") else { return nil }
        if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
        let defaultPort = self.secure ? 443 : 80
        if let parsed = HostPort(authority) {
            self.host = parsed.host
            self.port = parsed.port
        } else if !authority.contains(":") || (authority.hasPrefix("[") && authority.hasSuffix("]")) {
            self.host = authority.hasPrefix("[") ? String(authority.dropFirst().dropLast()) : authority
            self.port = defaultPort
        } else {
            return nil
        }
        guard self.port > 0, !self.host.isEmpty else { return nil }
        self.target = target
        if !self.secure && !self.isLoopback { return nil }
    }

    public var isLoopback: Bool {
        if self.host.lowercased() == "localhost" { return true }
        return IPAddress(self.host)?.isLoopback ?? false
    }

    /// The `Host` header value.
    public var authority: String {
        let bracketed = self.host.contains(":") ? "[\(self.host)]" : self.host
        return self.port == (self.secure ? 443 : 80) ? bracketed : "\(bracketed):\(self.port)"
    }

    public var description: String { "\(self.secure ? "https" : "http")://\(self.authority)\(self.target)" }

    /// Where an issuer publishes its discovery document (OpenID Connect
    /// Discovery 1.0 §4): the issuer with any trailing "/" removed, plus
    /// `/.well-known/openid-configuration`.
    public static func discovery(issuer: String) -> FetchURL? {
        var base = issuer
        while base.hasSuffix("/") { base.removeLast() }
        guard !base.contains("?") else { return nil }
        return FetchURL(base + "/.well-known/openid-configuration")
    }
}

/// Where an oidc profile's keys come from, as one string both the router
/// (which fetches) and the workers (which verify) compute alike: the
/// configured `jwks_uri`, else the issuer's discovery document.
public enum OIDCKeySource {
    public static func id(issuer: String, jwksURI: String?) -> String {
        if let jwksURI { return "jwks:" + jwksURI }
        return "discovery:" + (FetchURL.discovery(issuer: issuer)?.description ?? issuer)
    }
}
