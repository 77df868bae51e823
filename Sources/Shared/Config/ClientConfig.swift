public enum EntityStatus: String, Codable, Sendable, Equatable {
    case active, inactive
}

/// An API consumer: which collections it may call, under which policy, and
/// the profiles (auth configurations) it authenticates with.
public struct ClientConfig: Codable, Sendable, Equatable {
    public var id: String
    public var status: EntityStatus
    public var collections: [String]
    public var policy: String?
    public var profiles: [ProfileConfig]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, status, collections, policy, profiles
    }

    public init(id: String, status: EntityStatus = .active, collections: [String] = [], policy: String? = nil, profiles: [ProfileConfig] = []) {
        self.id = id
        self.status = status
        self.collections = collections
        self.policy = policy
        self.profiles = profiles
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try c.decode(String.self, forKey: .id)
        self.status = try c.decode(.status, default: .active)
        self.collections = try c.decode(.collections, default: [])
        self.policy = try c.decodeIfPresent(String.self, forKey: .policy)
        self.profiles = try c.decode(.profiles, default: [])
    }
}

public struct ProfileConfig: Codable, Sendable, Equatable {
    public var id: String
    public var status: EntityStatus
    public var auth: AuthConfig
    public var allowedMethods: [String]?
    public var allowedIPs: [String]?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, status, auth
        case allowedMethods = "allowed_methods"
        case allowedIPs = "allowed_ips"
    }

    public init(id: String, status: EntityStatus = .active, auth: AuthConfig, allowedMethods: [String]? = nil, allowedIPs: [String]? = nil) {
        self.id = id
        self.status = status
        self.auth = auth
        self.allowedMethods = allowedMethods
        self.allowedIPs = allowedIPs
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try c.decode(String.self, forKey: .id)
        self.status = try c.decode(.status, default: .active)
        self.auth = try c.decode(AuthConfig.self, forKey: .auth)
        self.allowedMethods = try c.decodeIfPresent([String].self, forKey: .allowedMethods)
        self.allowedIPs = try c.decodeIfPresent([String].self, forKey: .allowedIPs)
    }
}

public enum AuthType: String, Codable, Sendable, Equatable, CaseIterable {
    case token, jwt, oidc, mtls, none
}

/// One profile's auth settings. Which keys apply depends on `type`
/// (SPEC §3, §9); the validator rejects keys that do not belong to it.
/// Hashable so a worker can tell whether a profile's rules changed
/// (`CredentialStamp`): synthesized, so a new key is covered by itself.
public struct AuthConfig: Codable, Sendable, Hashable {
    public var type: AuthType
    // token
    public var tokenSHA256: String?
    // jwt
    public var secret: String?
    public var algorithms: [String]?
    public var leewayS: Int?
    public var maxTTLS: Int?
    public var requireSubMatch: Bool?
    public var requiredClaims: [String: String]?
    // oidc
    public var issuer: String?
    public var audience: String?
    public var jwksURI: String?
    public var rolesClaim: String?
    public var requiredRoles: [String]?
    // mtls
    public var subject: CertSubjectConfig?
    public var fingerprintSHA256: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case type
        case tokenSHA256 = "token_sha256"
        case secret, algorithms
        case leewayS = "leeway_s"
        case maxTTLS = "max_ttl_s"
        case requireSubMatch = "require_sub_match"
        case requiredClaims = "required_claims"
        case issuer, audience
        case jwksURI = "jwks_uri"
        case rolesClaim = "roles_claim"
        case requiredRoles = "required_roles"
        case subject
        case fingerprintSHA256 = "fingerprint_sha256"
    }

    public init(type: AuthType, tokenSHA256: String? = nil) {
        self.type = type
        self.tokenSHA256 = tokenSHA256
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let raw = try c.decode(String.self, forKey: .type)
        guard let type = AuthType(rawValue: raw) else {
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: c, debugDescription: "must be one of token, jwt, oidc, mtls, none")
        }
        self.type = type
        self.tokenSHA256 = try c.decodeIfPresent(String.self, forKey: .tokenSHA256)
        self.secret = try c.decodeIfPresent(String.self, forKey: .secret)
        self.algorithms = try c.decodeIfPresent([String].self, forKey: .algorithms)
        self.leewayS = try c.decodeIfPresent(Int.self, forKey: .leewayS)
        self.maxTTLS = try c.decodeIfPresent(Int.self, forKey: .maxTTLS)
        self.requireSubMatch = try c.decodeIfPresent(Bool.self, forKey: .requireSubMatch)
        self.requiredClaims = try c.decodeIfPresent([String: String].self, forKey: .requiredClaims)
        self.issuer = try c.decodeIfPresent(String.self, forKey: .issuer)
        self.audience = try c.decodeIfPresent(String.self, forKey: .audience)
        self.jwksURI = try c.decodeIfPresent(String.self, forKey: .jwksURI)
        self.rolesClaim = try c.decodeIfPresent(String.self, forKey: .rolesClaim)
        self.requiredRoles = try c.decodeIfPresent([String].self, forKey: .requiredRoles)
        self.subject = try c.decodeIfPresent(CertSubjectConfig.self, forKey: .subject)
        self.fingerprintSHA256 = try c.decodeIfPresent(String.self, forKey: .fingerprintSHA256)
    }
}

public struct CertSubjectConfig: Codable, Sendable, Hashable {
    public var cn: String
    public var ou: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case cn, ou
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.cn = try c.decode(String.self, forKey: .cn)
        self.ou = try c.decodeIfPresent(String.self, forKey: .ou)
    }
}
