/// An API product: where its traffic goes and which paths belong to it.
public struct CollectionConfig: Codable, Sendable, Equatable {
    public var id: String
    public var upstream: UpstreamConfig
    public var routes: [RouteConfig]
    /// Forward the client's `Authorization` upstream (default: stripped).
    public var keepAuthorization: Bool

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, upstream, routes
        case keepAuthorization = "keep_authorization"
    }

    public init(id: String, upstream: UpstreamConfig, routes: [RouteConfig], keepAuthorization: Bool = false) {
        self.id = id
        self.upstream = upstream
        self.routes = routes
        self.keepAuthorization = keepAuthorization
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try c.decode(String.self, forKey: .id)
        self.upstream = try c.decode(UpstreamConfig.self, forKey: .upstream)
        self.routes = try c.decode(.routes, default: [])
        self.keepAuthorization = try c.decode(.keepAuthorization, default: false)
    }
}

public struct UpstreamConfig: Codable, Sendable, Equatable {
    public var url: String
    public var timeoutMs: Int
    /// Id of a `credentials` entry injected into every upstream request.
    public var credential: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case url
        case timeoutMs = "timeout_ms"
        case credential
    }

    public init(url: String, timeoutMs: Int = 5000, credential: String? = nil) {
        self.url = url
        self.timeoutMs = timeoutMs
        self.credential = credential
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.url = try c.decode(String.self, forKey: .url)
        self.timeoutMs = try c.decode(.timeoutMs, default: 5000)
        self.credential = try c.decodeIfPresent(String.self, forKey: .credential)
    }
}

public struct RouteConfig: Codable, Sendable, Equatable {
    public var pathPrefix: String
    public var stripPrefix: Bool

    enum CodingKeys: String, CodingKey, CaseIterable {
        case pathPrefix = "path_prefix"
        case stripPrefix = "strip_prefix"
    }

    public init(pathPrefix: String, stripPrefix: Bool = false) {
        self.pathPrefix = pathPrefix
        self.stripPrefix = stripPrefix
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.pathPrefix = try c.decode(String.self, forKey: .pathPrefix)
        self.stripPrefix = try c.decode(.stripPrefix, default: false)
    }
}

/// A backend secret injected as a header on upstream requests.
public struct CredentialConfig: Codable, Sendable, Equatable {
    public var id: String
    public var header: String
    /// `$ENV_VAR` or `enc:v1:<kid>:<base64>`; never plaintext.
    public var value: String

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, header, value
    }

    public init(id: String, header: String, value: String) {
        self.id = id
        self.header = header
        self.value = value
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try c.decode(String.self, forKey: .id)
        self.header = try c.decode(String.self, forKey: .header)
        self.value = try c.decode(String.self, forKey: .value)
    }
}
