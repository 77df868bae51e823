/// Semantic checks on a decoded config (the decoder already caught types and
/// unknown keys). Collects every issue instead of stopping at the first.
struct ConfigValidator {
    private(set) var issues: [ConfigIssue] = []

    /// Auth types this build can enforce. A profile with any other type is
    /// refused at load time: accepting it and denying at request time would
    /// hide the mistake until traffic arrives.
    static let supportedAuthTypes: Set<AuthType> = [.token, .none]

    private mutating func fail(_ path: String, _ message: String) {
        self.issues.append(ConfigIssue(path, message))
    }

    mutating func validate(_ config: GatewayConfig) {
        self.validateServer(config.server)

        let credentialIDs = self.uniqueIDs(config.credentials.map(\.id), path: "credentials")
        for (i, credential) in config.credentials.enumerated() {
            let path = "credentials[\(i)]"
            if !HTTPToken.isValidFieldName(credential.header) { self.fail("\(path).header", "not a valid HTTP header name") }
            if !SecretValue.isReference(credential.value) { self.fail("\(path).value", SecretError.plaintext.description) }
        }

        let collectionIDs = self.uniqueIDs(config.collections.map(\.id), path: "collections")
        var prefixOwners: [String: String] = [:]
        for (i, collection) in config.collections.enumerated() {
            let path = "collections[\(i)]"
            if UpstreamURL(collection.upstream.url) == nil {
                self.fail("\(path).upstream.url", "must be http://host[:port][/path] (https upstreams are not supported yet)")
            }
            if collection.upstream.timeoutMs <= 0 { self.fail("\(path).upstream.timeout_ms", "must be positive") }
            if let credential = collection.upstream.credential, !credentialIDs.contains(credential) {
                self.fail("\(path).upstream.credential", "no credential with id \(credential)")
            }
            if collection.routes.isEmpty { self.fail("\(path).routes", "needs at least one route") }
            for (j, route) in collection.routes.enumerated() {
                let routePath = "\(path).routes[\(j)].path_prefix"
                let prefix = RoutePrefix.normalise(route.pathPrefix)
                if !route.pathPrefix.hasPrefix("/") || route.pathPrefix.contains("?") || route.pathPrefix.contains("#") {
                    self.fail(routePath, "must start with / and hold no query or fragment")
                } else if let owner = prefixOwners[prefix], owner != collection.id {
                    self.fail(routePath, "\(route.pathPrefix) is already routed to collection \(owner)")
                } else {
                    prefixOwners[prefix] = collection.id
                }
            }
        }

        let policyIDs = self.uniqueIDs(config.policies.map(\.id), path: "policies")
        for (i, policy) in config.policies.enumerated() {
            for (j, limit) in policy.rateLimits.enumerated() {
                let path = "policies[\(i)].rate_limits[\(j)]"
                if limit.limit <= 0 { self.fail("\(path).limit", "must be positive") }
                if let burst = limit.burst, burst <= 0 { self.fail("\(path).burst", "must be positive") }
            }
            for (j, quota) in policy.quotas.enumerated() where quota.limit <= 0 {
                self.fail("policies[\(i)].quotas[\(j)].limit", "must be positive")
            }
        }

        _ = self.uniqueIDs(config.clients.map(\.id), path: "clients")
        var profileOwners: [String: String] = [:]
        for (i, client) in config.clients.enumerated() {
            let path = "clients[\(i)]"
            if let policy = client.policy, !policyIDs.contains(policy) { self.fail("\(path).policy", "no policy with id \(policy)") }
            for (j, collection) in client.collections.enumerated() where !collectionIDs.contains(collection) {
                self.fail("\(path).collections[\(j)]", "no collection with id \(collection)")
            }
            for (j, profile) in client.profiles.enumerated() {
                let profilePath = "\(path).profiles[\(j)]"
                if profile.id.isEmpty { self.fail("\(profilePath).id", "must not be empty") }
                if let owner = profileOwners[profile.id] {
                    self.fail("\(profilePath).id", "profile id \(profile.id) is already used by client \(owner) (profile ids are unique across clients)")
                } else {
                    profileOwners[profile.id] = client.id
                }
                self.validateProfile(profile, path: profilePath)
            }
        }
    }

    private mutating func validateServer(_ server: ServerConfig) {
        if HostPort(server.listen) == nil { self.fail("server.listen", "must be host:port") }
        if HostPort(server.adminListen) == nil { self.fail("server.admin_listen", "must be host:port") }
        if let workers = server.workers, !(1...256).contains(workers) { self.fail("server.workers", "must be 1...256") }
        if let threads = server.routerThreads, !(1...256).contains(threads) { self.fail("server.router_threads", "must be 1...256") }
        for (i, proxy) in server.trustedProxies.enumerated() where CIDRBlock(proxy) == nil {
            self.fail("server.trusted_proxies[\(i)]", "not an IP address or CIDR range")
        }
        let limits = server.limits
        if !(1024...(1 << 20)).contains(limits.maxHeaderBytes) { self.fail("server.limits.max_header_bytes", "must be 1024...1048576") }
        if limits.maxBodyBytes < 0 { self.fail("server.limits.max_body_bytes", "must not be negative") }
        if limits.headerTimeoutMs <= 0 { self.fail("server.limits.header_timeout_ms", "must be positive") }
        if limits.idleTimeoutMs <= 0 { self.fail("server.limits.idle_timeout_ms", "must be positive") }
        if server.decisionLog.isEmpty { self.fail("server.decision_log", "must be a file path, stdout or \"off\"") }
        if server.tls != nil { self.fail("server.tls", "TLS termination is not available in this build yet") }
    }

    private mutating func validateProfile(_ profile: ProfileConfig, path: String) {
        let auth = profile.auth
        if !ConfigValidator.supportedAuthTypes.contains(auth.type) {
            self.fail("\(path).auth.type", "auth type \(auth.type.rawValue) is not available in this build yet")
        }
        switch auth.type {
        case .token:
            if let hex = auth.tokenSHA256 {
                if hex.utf8.count != 64 || SHA256Digest(hex: hex) == nil {
                    self.fail("\(path).auth.token_sha256", "must be 64 hex digits (SHA-256 of the token)")
                }
            } else {
                self.fail("\(path).auth.token_sha256", "required for auth type token (portcullis token issue)")
            }
        case .none, .jwt, .oidc, .mtls:
            if auth.tokenSHA256 != nil { self.fail("\(path).auth.token_sha256", "only applies to auth type token") }
        }
        if let methods = profile.allowedMethods {
            for (k, method) in methods.enumerated() where !HTTPToken.isValidMethod(method) {
                self.fail("\(path).allowed_methods[\(k)]", "not an HTTP method (use upper case, e.g. GET)")
            }
        }
        if let ips = profile.allowedIPs {
            if ips.isEmpty { self.fail("\(path).allowed_ips", "an empty allowlist would deny everything; omit the key instead") }
            for (k, ip) in ips.enumerated() where CIDRBlock(ip) == nil {
                self.fail("\(path).allowed_ips[\(k)]", "not an IP address or CIDR range")
            }
        }
    }

    private mutating func uniqueIDs(_ ids: [String], path: String) -> Set<String> {
        var seen = Set<String>()
        for (i, id) in ids.enumerated() {
            if id.isEmpty { self.fail("\(path)[\(i)].id", "must not be empty") }
            if !seen.insert(id).inserted { self.fail("\(path)[\(i)].id", "duplicate id \(id)") }
        }
        return seen
    }
}

/// RFC 9110 token rules for method and field names.
public enum HTTPToken {
    static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
    }

    public static func isValidFieldName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy(isTokenChar)
    }

    public static func isValidMethod(_ method: String) -> Bool {
        !method.isEmpty && method.utf8.allSatisfy { isTokenChar($0) && !(UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) }
    }
}

/// Route prefixes compare without a trailing slash: `/orders/` and `/orders`
/// route the same subtree.
public enum RoutePrefix {
    public static func normalise(_ prefix: String) -> String {
        var p = prefix
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }
}
