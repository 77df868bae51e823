import Shared

/// Everything the router knows about where an allowed request goes.
struct UpstreamRoute: Sendable {
    let collectionID: String
    let url: UpstreamURL
    let timeoutMs: Int
    let keepAuthorization: Bool
    let credential: ResolvedCredential?
    /// The credential's header name, lower-cased, for dropping a client
    /// header of the same name (SPEC §9: the backend credential replaces it).
    let credentialNameLowercased: [UInt8]?

    init(collectionID: String, url: UpstreamURL, timeoutMs: Int, keepAuthorization: Bool, credential: ResolvedCredential?) {
        self.collectionID = collectionID
        self.url = url
        self.timeoutMs = timeoutMs
        self.keepAuthorization = keepAuthorization
        self.credential = credential
        self.credentialNameLowercased = credential.map { Array($0.header.lowercased().utf8) }
    }

    /// Upstream target: the path and query as received, minus a stripped
    /// prefix, under the upstream URL's base path.
    static func target(_ target: String, basePath: String, stripPrefixBytes: Int) -> String {
        var rest = Substring(target)
        if stripPrefixBytes > 0, target.utf8.count >= stripPrefixBytes {
            rest = Substring(target.utf8.dropFirst(stripPrefixBytes))
            if rest.isEmpty || rest.first == "?" { rest = "/" + rest }
        }
        return basePath.isEmpty ? String(rest) : basePath + rest
    }
}
