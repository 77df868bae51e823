/// Where quota counts are shared: `REDIS_URL` or `server.redis_url`.
/// `redis://[[user]:password@]host[:port][/db]` or `unix:///path[?db=N]`.
/// TLS (`rediss://`) is refused with a clear error: Debian's hiredis 0.14 has
/// no TLS; put a TLS sidecar (stunnel, Envoy) on loopback in front instead.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public enum Address: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var address: Address
    public var username: String?
    public var password: String?
    public var database: Int

    public init(address: Address, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.address = address
        self.username = username
        self.password = password
        self.database = database
    }

    /// Never shows the password: this is what logs and `/readyz` print.
    public var description: String {
        let auth = self.password == nil ? "" : "\(self.username ?? ""):***@"
        switch self.address {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            return "redis://\(auth)\(shownHost):\(port)/\(self.database)"
        case .unix(let path):
            return "unix://\(auth)\(path)?db=\(self.database)"
        }
    }

    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { self.message }
    }

    public static func parse(_ text: String) throws(ParseError) -> RedisEndpoint {
        func fail(_ why: String) -> ParseError { ParseError(message: "redis url: \(why)") }
        if text.hasPrefix("rediss://") {
            throw fail("TLS (rediss://) is not supported by this build's hiredis; use redis:// to a local TLS sidecar")
        }
        if text.hasPrefix("unix://") {
            var rest = Substring(text.dropFirst("unix://".count))
            var credentials: Substring? = nil
            if let at = rest.lastIndex(of: "@") {
                credentials = rest[..<at]
                rest = rest[rest.index(after: at)...]
            }
            var database = 0
            if let question = rest.firstIndex(of: "?") {
                let query = rest[rest.index(after: question)...]
                rest = rest[..<question]
                for item in query.split(separator: "&") {
                    let pair = item.split(separator: "=", maxSplits: 1)
                    guard pair.count == 2, pair[0] == "db", let db = Int(pair[1]), db >= 0 else {
                        throw fail("unix query may only hold db=N")
                    }
                    database = db
                }
            }
            guard rest.hasPrefix("/") else { throw fail("unix socket path must be absolute") }
            var endpoint = RedisEndpoint(address: .unix(path: String(rest)), database: database)
            try endpoint.setCredentials(credentials)
            return endpoint
        }
        guard text.hasPrefix("redis://") else { throw fail("must start with redis:// or unix://") }
        var rest = Substring(text.dropFirst("redis://".count))
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard let db = Int(path), db >= 0 else { throw fail("database must be a number") }
                database = db
            }
        }
        var credentials: Substring? = nil
        if let at = rest.lastIndex(of: "@") {
            credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
        }
        var host: Substring
        var port = 6379
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw fail("unclosed [ in IPv6 host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw fail("bad port") }
                port = p
            } else if !after.isEmpty {
                throw fail("unexpected text after the host")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else { throw fail("bad port") }
            port = p
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw fail("missing host") }
        var endpoint = RedisEndpoint(address: .tcp(host: String(host), port: port), database: database)
        try endpoint.setCredentials(credentials)
        return endpoint
    }

    private mutating func setCredentials(_ credentials: Substring?) throws(ParseError) {
        guard let credentials, !credentials.isEmpty else { return }
        let parts = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 2 {
            self.username = parts[0].isEmpty ? nil : Self.percentDecoded(parts[0])
            self.password = Self.percentDecoded(parts[1])
        } else {
            // `redis://secret@host` is the common shorthand for a password.
            self.password = Self.percentDecoded(parts[0])
        }
    }

    private static func percentDecoded(_ text: Substring) -> String {
        let input = Array(text.utf8)
        var bytes: [UInt8] = []
        var i = 0
        while i < input.count {
            if input[i] == UInt8(ascii: "%"), i + 2 < input.count,
                let value = UInt8(String(decoding: input[(i + 1)...(i + 2)], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                i += 3
            } else {
                bytes.append(input[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
