import Shared

/// This worker's share of the config, compiled for lookups: dictionaries by
/// id, parsed allowlists, hashed tokens. Immutable; a new snapshot builds a
/// new model and the engine swaps it.
final class WorkerModel {
    let version: UInt64
    let clients: [String: CompiledClient]
    /// Profiles of this worker's clients.
    let profiles: [String: CompiledProfile]
    /// Profile id -> owning client id, for clients of other workers.
    let foreignProfiles: [String: String]
    let routes: RouteTable

    init(snapshot: WorkerSnapshot) throws(ConfigError) {
        var issues: [ConfigIssue] = []
        var policies: [String: CompiledPolicy] = [:]
        for policy in snapshot.policies { policies[policy.id] = CompiledPolicy(policy) }

        var clients: [String: CompiledClient] = [:]
        var profiles: [String: CompiledProfile] = [:]
        for (i, client) in snapshot.clients.enumerated() {
            var clientProfiles: [String] = []
            for (j, profile) in client.profiles.enumerated() {
                do {
                    profiles[profile.id] = try CompiledProfile(profile, clientID: client.id)
                    clientProfiles.append(profile.id)
                } catch {
                    issues.append(ConfigIssue("clients[\(i)].profiles[\(j)].\(error.path)", error.message))
                }
            }
            clients[client.id] = CompiledClient(
                id: client.id,
                active: client.status == .active,
                collections: Set(client.collections),
                policy: client.policy.flatMap { policies[$0] }
            )
        }
        guard issues.isEmpty else { throw ConfigError(issues) }
        self.version = snapshot.version
        self.clients = clients
        self.profiles = profiles
        self.foreignProfiles = snapshot.foreignProfiles
        self.routes = RouteTable(snapshot.collections)
    }
}

struct CompiledClient {
    let id: String
    let active: Bool
    let collections: Set<String>
    let policy: CompiledPolicy?
}

enum ProfileCredential {
    case token(SHA256Digest)
    case none
}

struct CompiledProfile {
    let id: String
    let clientID: String
    let active: Bool
    let authType: AuthType
    let credential: ProfileCredential
    let allowedMethods: Set<String>?
    /// `Allow` header value: exactly the configured methods, in order.
    let allowHeader: String
    let allowedIPs: IPRangeSet?

    init(_ profile: ProfileConfig, clientID: String) throws(ConfigIssue) {
        self.id = profile.id
        self.clientID = clientID
        self.active = profile.status == .active
        self.authType = profile.auth.type
        switch profile.auth.type {
        case .token:
            guard let hex = profile.auth.tokenSHA256, let digest = SHA256Digest(hex: hex) else {
                throw ConfigIssue("auth.token_sha256", "must be 64 hex digits")
            }
            self.credential = .token(digest)
        case .none:
            self.credential = .none
        case .jwt, .oidc, .mtls:
            throw ConfigIssue("auth.type", "auth type \(profile.auth.type.rawValue) is not available in this build yet")
        }
        self.allowedMethods = profile.allowedMethods.map(Set.init)
        self.allowHeader = profile.allowedMethods?.joined(separator: ", ") ?? ""
        if let ips = profile.allowedIPs {
            var blocks: [CIDRBlock] = []
            for (k, ip) in ips.enumerated() {
                guard let block = CIDRBlock(ip) else { throw ConfigIssue("allowed_ips[\(k)]", "not an IP address or CIDR range") }
                blocks.append(block)
            }
            self.allowedIPs = IPRangeSet(blocks)
        } else {
            self.allowedIPs = nil
        }
    }
}

extension ConfigIssue: Error {}
