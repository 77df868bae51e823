import Shared

/// Everything the router knows about where an allowed request goes. A
/// class of constants: each allowed request holds its route, and a
/// reference is one retain where a struct of strings was several.
final class UpstreamRoute: Sendable {
    let collectionID: String
    let url: UpstreamURL
    let timeoutMs: Int
    let keepAuthorization: Bool
    let credential: ResolvedCredential?
    /// The credential's header name, lower-cased, for dropping a client
    /// header of the same name (SPEC §9: the backend credential replaces it).
    let credentialNameLowercased: [UInt8]?
    /// The connection pool key, made once rather than per request.
    let poolKey: UpstreamPool.Key

    init(collectionID: String, url: UpstreamURL, timeoutMs: Int, keepAuthorization: Bool, credential: ResolvedCredential?) {
        self.collectionID = collectionID
        self.url = url
        self.timeoutMs = timeoutMs
        self.keepAuthorization = keepAuthorization
        self.credential = credential
        self.credentialNameLowercased = credential.map { Array($0.header.lowercased().utf8) }
        self.poolKey = UpstreamPool.Key(host: url.host, port: url.port)
    }
}
