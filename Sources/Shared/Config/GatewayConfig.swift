/// The config model of SPEC §4, as read from YAML (or, later, MongoDB).
/// Values are immutable snapshots: a change builds a new one and swaps it.
public struct GatewayConfig: Codable, Sendable, Equatable {
    public var server: ServerConfig
    public var collections: [CollectionConfig]
    public var policies: [PolicyConfig]
    public var credentials: [CredentialConfig]
    public var clients: [ClientConfig]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case server, collections, policies, credentials, clients
    }

    public init(
        server: ServerConfig = ServerConfig(), collections: [CollectionConfig] = [], policies: [PolicyConfig] = [],
        credentials: [CredentialConfig] = [], clients: [ClientConfig] = []
    ) {
        self.server = server
        self.collections = collections
        self.policies = policies
        self.credentials = credentials
        self.clients = clients
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.server = try c.decode(.server, default: ServerConfig())
        self.collections = try c.decode(.collections, default: [])
        self.policies = try c.decode(.policies, default: [])
        self.credentials = try c.decode(.credentials, default: [])
        self.clients = try c.decode(.clients, default: [])
    }
}

public struct ServerConfig: Codable, Sendable, Equatable {
    public var listen: String
    public var adminListen: String
    public var workers: Int?
    /// Event-loop threads of the router; default: CPU count.
    public var routerThreads: Int?
    public var trustedProxies: [String]
    public var tls: TLSConfig?
    public var redisURL: String?
    public var mongodbURI: String?
    public var limits: LimitsConfig
    public var decisionLog: String
    public var snapshotPath: String?
    public var admin: AdminConfig?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listen
        case adminListen = "admin_listen"
        case workers
        case routerThreads = "router_threads"
        case trustedProxies = "trusted_proxies"
        case tls
        case redisURL = "redis_url"
        case mongodbURI = "mongodb_uri"
        case limits
        case decisionLog = "decision_log"
        case snapshotPath = "snapshot_path"
        case admin
    }

    public init() {
        self.listen = "0.0.0.0:8080"
        self.adminListen = "127.0.0.1:8081"
        self.workers = nil
        self.routerThreads = nil
        self.trustedProxies = []
        self.tls = nil
        self.redisURL = nil
        self.mongodbURI = nil
        self.limits = LimitsConfig()
        self.decisionLog = "stdout"
        self.snapshotPath = nil
        self.admin = nil
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = ServerConfig()
        self.listen = try c.decode(.listen, default: defaults.listen)
        self.adminListen = try c.decode(.adminListen, default: defaults.adminListen)
        self.workers = try c.decodeIfPresent(Int.self, forKey: .workers)
        self.routerThreads = try c.decodeIfPresent(Int.self, forKey: .routerThreads)
        self.trustedProxies = try c.decode(.trustedProxies, default: [])
        self.tls = try c.decodeIfPresent(TLSConfig.self, forKey: .tls)
        self.redisURL = try c.decodeIfPresent(String.self, forKey: .redisURL)
        self.mongodbURI = try c.decodeIfPresent(String.self, forKey: .mongodbURI)
        self.limits = try c.decode(.limits, default: LimitsConfig())
        // YAML reads a bare `off` as the boolean false; accept it as "off".
        if let flag = try? c.decodeIfPresent(Bool.self, forKey: .decisionLog) {
            self.decisionLog = flag ? "stdout" : "off"
        } else {
            self.decisionLog = try c.decode(.decisionLog, default: defaults.decisionLog)
        }
        self.snapshotPath = try c.decodeIfPresent(String.self, forKey: .snapshotPath)
        self.admin = try c.decodeIfPresent(AdminConfig.self, forKey: .admin)
    }
}

public struct LimitsConfig: Codable, Sendable, Equatable {
    public var maxHeaderBytes: Int
    public var maxBodyBytes: Int
    public var headerTimeoutMs: Int
    public var idleTimeoutMs: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case maxHeaderBytes = "max_header_bytes"
        case maxBodyBytes = "max_body_bytes"
        case headerTimeoutMs = "header_timeout_ms"
        case idleTimeoutMs = "idle_timeout_ms"
    }

    public init(maxHeaderBytes: Int = 32 * 1024, maxBodyBytes: Int = 10 << 20, headerTimeoutMs: Int = 10_000, idleTimeoutMs: Int = 60_000) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
        self.headerTimeoutMs = headerTimeoutMs
        self.idleTimeoutMs = idleTimeoutMs
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = LimitsConfig()
        self.maxHeaderBytes = try c.decode(.maxHeaderBytes, default: d.maxHeaderBytes)
        self.maxBodyBytes = try c.decode(.maxBodyBytes, default: d.maxBodyBytes)
        self.headerTimeoutMs = try c.decode(.headerTimeoutMs, default: d.headerTimeoutMs)
        self.idleTimeoutMs = try c.decode(.idleTimeoutMs, default: d.idleTimeoutMs)
    }
}

public struct TLSConfig: Codable, Sendable, Equatable {
    public var listen: String
    public var cert: String
    public var key: String
    public var clientCA: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listen, cert, key
        case clientCA = "client_ca"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.listen = try c.decode(String.self, forKey: .listen)
        self.cert = try c.decode(String.self, forKey: .cert)
        self.key = try c.decode(String.self, forKey: .key)
        self.clientCA = try c.decodeIfPresent(String.self, forKey: .clientCA)
    }
}

public struct AdminConfig: Codable, Sendable, Equatable {
    public var issuer: String
    public var audience: String
    public var rolesClaim: String
    public var jwksURI: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case issuer, audience
        case rolesClaim = "roles_claim"
        case jwksURI = "jwks_uri"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.issuer = try c.decode(String.self, forKey: .issuer)
        self.audience = try c.decode(String.self, forKey: .audience)
        self.rolesClaim = try c.decode(.rolesClaim, default: "roles")
        self.jwksURI = try c.decodeIfPresent(String.self, forKey: .jwksURI)
    }
}
