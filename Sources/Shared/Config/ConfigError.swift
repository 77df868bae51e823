/// One problem in a config document, named by its field path
/// (`clients[0].profiles[1].auth.token_sha256`).
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let message: String

    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { self.path.isEmpty ? self.message : "\(self.path): \(self.message)" }
}

/// A rejected config: every issue found, so an operator fixes them in one go.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public let issues: [ConfigIssue]

    public init(_ issues: [ConfigIssue]) { self.issues = issues }
    public init(_ path: String, _ message: String) { self.issues = [ConfigIssue(path, message)] }

    public var description: String {
        "invalid config: " + self.issues.map(\.description).joined(separator: "; ")
    }
}
