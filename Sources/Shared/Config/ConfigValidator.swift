/// Semantic checks on a decoded config (the decoder already caught types and
/// unknown keys). Collects every issue instead of stopping at the first.
struct ConfigValidator {
    private(set) var issues: [ConfigIssue] = []

    /// Auth types this build can enforce. A profile with any other type is
    /// refused at load time: accepting it and denying at request time would
    /// hide the mistake until traffic arrives.
    static let supportedAuthTypes: Set<AuthType> = [.token, .jwt, .oidc, .mtls, .none]
    static let jwtAlgorithms: Set<JWSAlgorithm> = [.hs256, .hs384, .hs512]
    /// Asymmetric only: an HS* algorithm on an oidc profile would let a
    /// token signed with the IdP's public key (as an HMAC secret) pass.
    static let oidcAlgorithms: Set<JWSAlgorithm> = Set(JWSAlgorithm.allCases.filter { !$0.isHMAC })
    /// Longer leeway than this stops being clock skew and starts being a
    /// longer token lifetime.
    static let maxLeewaySeconds = 600

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
        if let admin = server.admin {
            if FetchURL(admin.issuer) == nil || FetchURL.discovery(issuer: admin.issuer) == nil {
                self.fail("server.admin.issuer", "must be an https:// URL (http:// only for loopback)")
            }
            if admin.audience.isEmpty { self.fail("server.admin.audience", "must not be empty") }
            if admin.rolesClaim.isEmpty { self.fail("server.admin.roles_claim", "must not be empty") }
            if let uri = admin.jwksURI, FetchURL(uri) == nil {
                self.fail("server.admin.jwks_uri", "must be an https:// URL (http:// only for loopback)")
            }
        }
        if let tls = server.tls {
            if HostPort(tls.listen) == nil { self.fail("server.tls.listen", "must be host:port") }
            if tls.cert.isEmpty { self.fail("server.tls.cert", "must name a PEM certificate file") }
            if tls.key.isEmpty { self.fail("server.tls.key", "must name a PEM private key file") }
            if tls.clientCA?.isEmpty == true { self.fail("server.tls.client_ca", "must name a PEM CA file; omit it to take no client certificates") }
        }
    }

    private mutating func validateProfile(_ profile: ProfileConfig, path: String) {
        let auth = profile.auth
        if !ConfigValidator.supportedAuthTypes.contains(auth.type) {
            self.fail("\(path).auth.type", "auth type \(auth.type.rawValue) is not available in this build yet")
        }
        let at = "\(path).auth"
        // Keys of other auth types are mistakes worth naming: a `secret` on
        // an oidc profile is never used, and its author should know.
        let present: [(String, Bool, [AuthType])] = [
            ("token_sha256", auth.tokenSHA256 != nil, [.token]),
            ("secret", auth.secret != nil, [.jwt]),
            ("max_ttl_s", auth.maxTTLS != nil, [.jwt]),
            ("require_sub_match", auth.requireSubMatch != nil, [.jwt]),
            ("algorithms", auth.algorithms != nil, [.jwt, .oidc]),
            ("leeway_s", auth.leewayS != nil, [.jwt, .oidc]),
            ("required_claims", auth.requiredClaims != nil, [.jwt, .oidc]),
            ("issuer", auth.issuer != nil, [.oidc]),
            ("audience", auth.audience != nil, [.oidc]),
            ("jwks_uri", auth.jwksURI != nil, [.oidc]),
            ("roles_claim", auth.rolesClaim != nil, [.oidc]),
            ("required_roles", auth.requiredRoles != nil, [.oidc]),
            ("subject", auth.subject != nil, [.mtls]),
            ("fingerprint_sha256", auth.fingerprintSHA256 != nil, [.mtls]),
        ]
        for (key, isSet, types) in present where isSet && !types.contains(auth.type) {
            let owners = types.map(\.rawValue).sorted().joined(separator: " or ")
            self.fail("\(at).\(key)", "only applies to auth type \(owners)")
        }
        switch auth.type {
        case .token:
            if let hex = auth.tokenSHA256 {
                if hex.utf8.count != 64 || SHA256Digest(hex: hex) == nil {
                    self.fail("\(at).token_sha256", "must be 64 hex digits (SHA-256 of the token)")
                }
            } else {
                self.fail("\(at).token_sha256", "required for auth type token (portcullis token issue)")
            }
        case .jwt:
            if let secret = auth.secret {
                if !SecretValue.isReference(secret) { self.fail("\(at).secret", SecretError.plaintext.description) }
            } else {
                self.fail("\(at).secret", "required for auth type jwt (enc:v1:... from portcullis secret encrypt, or $ENV_VAR)")
            }
            self.validateAlgorithms(auth.algorithms, allowed: Self.jwtAlgorithms, path: at)
            self.validateTimes(auth, path: at)
            if let ttl = auth.maxTTLS, ttl <= 0 { self.fail("\(at).max_ttl_s", "must be positive") }
        case .oidc:
            if let issuer = auth.issuer {
                if FetchURL(issuer) == nil || FetchURL.discovery(issuer: issuer) == nil {
                    self.fail("\(at).issuer", "must be an https:// URL (http:// only for loopback)")
                }
            } else {
                self.fail("\(at).issuer", "required for auth type oidc")
            }
            if auth.audience?.isEmpty ?? true { self.fail("\(at).audience", "required for auth type oidc") }
            if let uri = auth.jwksURI, FetchURL(uri) == nil {
                self.fail("\(at).jwks_uri", "must be an https:// URL (http:// only for loopback)")
            }
            self.validateAlgorithms(auth.algorithms, allowed: Self.oidcAlgorithms, path: at)
            self.validateTimes(auth, path: at)
            if let claim = auth.rolesClaim, claim.isEmpty || claim.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) {
                self.fail("\(at).roles_claim", "must be a claim name or a dotted path such as realm_access.roles")
            }
            if let roles = auth.requiredRoles, roles.isEmpty || roles.contains(where: \.isEmpty) {
                self.fail("\(at).required_roles", "must list at least one non-empty role; omit the key to require none")
            }
        case .mtls:
            switch (auth.subject, auth.fingerprintSHA256) {
            case (nil, nil):
                self.fail("\(at)", "auth type mtls needs subject: {cn, ou} or fingerprint_sha256")
            case (.some, .some):
                self.fail("\(at)", "bind either subject or fingerprint_sha256, not both")
            case (.some(let subject), nil):
                if subject.cn.isEmpty { self.fail("\(at).subject.cn", "must not be empty") }
                if subject.ou?.isEmpty == true { self.fail("\(at).subject.ou", "must not be empty; omit it to accept any OU") }
            case (nil, .some(let fingerprint)):
                if SHA256Digest(fingerprint: fingerprint) == nil {
                    self.fail("\(at).fingerprint_sha256", "must be the certificate's SHA-256: 64 hex digits, colons allowed")
                }
            }
        case .none:
            break
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

    private mutating func validateAlgorithms(_ algorithms: [String]?, allowed: Set<JWSAlgorithm>, path: String) {
        guard let algorithms else { return }
        if algorithms.isEmpty { self.fail("\(path).algorithms", "must list at least one algorithm") }
        let names = allowed.map(\.rawValue).sorted().joined(separator: ", ")
        for (k, name) in algorithms.enumerated() where JWSAlgorithm(rawValue: name).map(allowed.contains) != true {
            self.fail("\(path).algorithms[\(k)]", "\(name) is not allowed here (one of \(names))")
        }
    }

    private mutating func validateTimes(_ auth: AuthConfig, path: String) {
        if let leeway = auth.leewayS, !(0...Self.maxLeewaySeconds).contains(leeway) {
            self.fail("\(path).leeway_s", "must be 0...\(Self.maxLeewaySeconds)")
        }
        if let claims = auth.requiredClaims, claims.keys.contains(where: \.isEmpty) {
            self.fail("\(path).required_claims", "claim names must not be empty")
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
