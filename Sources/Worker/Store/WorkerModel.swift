import Foundation
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
    /// Kept to compile the clients of a delta the same way.
    private let policies: [String: CompiledPolicy]
    private let secrets: SecretContext

    /// `environment` resolves jwt secrets (`ENCRYPTION_KEY`, `$VAR`
    /// references); the worker inherits the router's.
    convenience init(snapshot: WorkerSnapshot, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) {
        let secrets: SecretContext
        do {
            secrets = SecretContext(key: try EncryptionKey.fromEnvironment(environment), environment: environment)
        } catch {
            throw ConfigError([ConfigIssue("ENCRYPTION_KEY", error.description)])
        }
        var policies: [String: CompiledPolicy] = [:]
        for policy in snapshot.policies { policies[policy.id] = CompiledPolicy(policy) }
        var clients: [String: CompiledClient] = [:]
        var profiles: [String: CompiledProfile] = [:]
        var issues: [ConfigIssue] = []
        for (i, client) in snapshot.clients.enumerated() {
            clients[client.id] = Self.compile(client, at: "clients[\(i)]", policies: policies, secrets: secrets, into: &profiles, issues: &issues)
        }
        guard issues.isEmpty else { throw ConfigError(issues) }
        self.init(
            version: snapshot.version, clients: clients, profiles: profiles, foreignProfiles: snapshot.foreignProfiles,
            routes: RouteTable(snapshot.collections), policies: policies, secrets: secrets)
    }

    private init(
        version: UInt64, clients: [String: CompiledClient], profiles: [String: CompiledProfile], foreignProfiles: [String: String],
        routes: RouteTable, policies: [String: CompiledPolicy], secrets: SecretContext
    ) {
        self.version = version
        self.clients = clients
        self.profiles = profiles
        self.foreignProfiles = foreignProfiles
        self.routes = routes
        self.policies = policies
        self.secrets = secrets
    }

    /// This model with `delta`'s clients replaced, added or removed, and
    /// its policies and routes replaced when the delta carries them; the
    /// rest is shared, not rebuilt. A client that fails to compile fails
    /// the whole delta (the model in force stays).
    func applying(_ delta: WorkerDelta, version: UInt64) throws(ConfigError) -> WorkerModel {
        var policies = self.policies
        /// Policies whose compiled object is new or gone: their clients are re-pointed.
        var repointed = Set<String>()
        if let configs = delta.policies {
            policies = [:]
            for config in configs {
                if let kept = self.policies[config.id], kept.config == config {
                    policies[config.id] = kept
                } else {
                    policies[config.id] = CompiledPolicy(config)
                    repointed.insert(config.id)
                }
            }
            for id in self.policies.keys where policies[id] == nil { repointed.insert(id) }
        }
        var clients = self.clients
        var profiles = self.profiles
        var foreign = self.foreignProfiles
        var issues: [ConfigIssue] = []
        for id in delta.removed + delta.upserts.map(\.id) {
            guard let old = clients.removeValue(forKey: id) else { continue }
            for profile in old.profileIDs { profiles.removeValue(forKey: profile) }
        }
        for (i, client) in delta.upserts.enumerated() {
            clients[client.id] = Self.compile(client, at: "upserts[\(i)]", policies: policies, secrets: self.secrets, into: &profiles, issues: &issues)
            for profile in client.profiles { foreign.removeValue(forKey: profile.id) }
        }
        guard issues.isEmpty else { throw ConfigError(issues) }
        if !repointed.isEmpty {
            // A walk over this worker's clients, no compiling: profiles and
            // their verified tokens stay as they are.
            for (id, client) in self.clients where clients[id] === client {
                guard let policyID = client.policyID, repointed.contains(policyID) else { continue }
                clients[id] = client.repointed(to: policies[policyID])
            }
        }
        for profile in delta.foreignRemoved { foreign.removeValue(forKey: profile) }
        for (profile, client) in delta.foreignSet { foreign[profile] = client }
        return WorkerModel(
            version: version, clients: clients, profiles: profiles, foreignProfiles: foreign,
            routes: delta.collections.map(RouteTable.init) ?? self.routes, policies: policies, secrets: self.secrets)
    }

    private static func compile(
        _ client: ClientConfig, at path: String, policies: [String: CompiledPolicy], secrets: SecretContext,
        into profiles: inout [String: CompiledProfile], issues: inout [ConfigIssue]
    ) -> CompiledClient {
        var clientProfiles: [CompiledProfile] = []
        for (j, profile) in client.profiles.enumerated() {
            do {
                let compiled = try CompiledProfile(profile, clientID: client.id, secrets: secrets)
                profiles[profile.id] = compiled
                clientProfiles.append(compiled)
            } catch {
                issues.append(ConfigIssue("\(path).profiles[\(j)].\(error.path)", error.message))
            }
        }
        return CompiledClient(
            id: client.id, active: client.status == .active, collections: Set(client.collections),
            policyID: client.policy, policy: client.policy.flatMap { policies[$0] }, profiles: clientProfiles)
    }
}

/// Compiled clients, profiles and policies are classes: the pipeline's
/// per-request context holds them, and copying a reference costs one
/// retain where copying the struct cost one per field.
final class CompiledClient {
    let id: String
    let active: Bool
    let collections: Set<String>
    private let collectionList: [String]
    /// The policy it names, kept so a changed policy can be re-pointed.
    let policyID: String?
    let policy: CompiledPolicy?
    /// Its profiles: a request names one of them nearly always, found here
    /// without hashing its id; and a delta replacing the client drops them.
    let profiles: [CompiledProfile]
    var profileIDs: [String] { self.profiles.map(\.id) }

    /// The limiter's state for this client, kept here by `PolicyLimiter`
    /// so that a request does not look it up by client id. Worker loop
    /// only, like the limiter; trusted only while `limitGeneration` is
    /// the limiter's (any reload's `retain` moves that on).
    var limitState: ClientLimitState?
    var limitGeneration = -1

    init(id: String, active: Bool, collections: Set<String>, policyID: String? = nil, policy: CompiledPolicy?, profiles: [CompiledProfile] = []) {
        self.id = id
        self.active = active
        self.collections = collections
        self.collectionList = Array(collections)
        self.policyID = policyID ?? policy?.id
        self.policy = policy
        self.profiles = profiles
    }

    /// Whether the client may use `collection`. Most clients name a few
    /// collections, and comparing a few short ids beats hashing one.
    @inline(__always)
    func mayUse(_ collection: String) -> Bool {
        if self.collectionList.count <= 4 {
            for id in self.collectionList where id == collection { return true }
            return false
        }
        return self.collections.contains(collection)
    }

    /// The profile `id` of this client, if it has one by that id.
    @inline(__always)
    func profile(_ id: String) -> CompiledProfile? {
        for profile in self.profiles where profile.id == id { return profile }
        return nil
    }

    /// The same client under a recompiled (or withdrawn) policy; its limit
    /// state is not carried over here (the limiter decides that by
    /// fingerprint).
    func repointed(to policy: CompiledPolicy?) -> CompiledClient {
        CompiledClient(id: self.id, active: self.active, collections: self.collections, policyID: self.policyID, policy: policy, profiles: self.profiles)
    }
}

enum ProfileCredential {
    case token(SHA256Digest)
    case jwt(JWTRules)
    case oidc(OIDCRules)
    case mtls(CertBinding)
    case none
}

struct SecretContext {
    let key: EncryptionKey?
    let environment: [String: String]
}

final class CompiledProfile {
    let id: String
    let clientID: String
    let active: Bool
    let authType: AuthType
    let credential: ProfileCredential
    let allowedMethods: Set<String>?
    /// `Allow` header value: exactly the configured methods, in order.
    let allowHeader: String
    let allowedIPs: IPRangeSet?
    /// What the verified-token cache binds its entries to.
    let stamp: CredentialStamp

    init(_ profile: ProfileConfig, clientID: String, secrets: SecretContext) throws(ConfigIssue) {
        self.id = profile.id
        self.clientID = clientID
        self.stamp = CredentialStamp(profileID: profile.id, clientID: clientID, auth: profile.auth)
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
        case .jwt:
            self.credential = .jwt(try Self.jwtRules(profile.auth, secrets: secrets))
        case .oidc:
            self.credential = .oidc(try Self.oidcRules(profile.auth))
        case .mtls:
            if let fingerprint = profile.auth.fingerprintSHA256 {
                guard let digest = SHA256Digest(fingerprint: fingerprint) else {
                    throw ConfigIssue("auth.fingerprint_sha256", "must be 64 hex digits")
                }
                self.credential = .mtls(.fingerprint(digest))
            } else if let subject = profile.auth.subject {
                self.credential = .mtls(.subject(cn: subject.cn, ou: subject.ou))
            } else {
                throw ConfigIssue("auth", "mtls needs subject or fingerprint_sha256")
            }
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

extension CompiledProfile {
    static let defaultLeeway: Int64 = 30

    static func jwtRules(_ auth: AuthConfig, secrets: SecretContext) throws(ConfigIssue) -> JWTRules {
        guard let stored = auth.secret else { throw ConfigIssue("auth.secret", "required") }
        let secret: String
        do {
            secret = try SecretValue.resolve(stored, key: secrets.key, environment: secrets.environment)
        } catch {
            throw ConfigIssue("auth.secret", error.description)
        }
        let algorithms = try self.algorithms(auth.algorithms, default: .hs256)
        return JWTRules(
            keys: algorithms.compactMap(\.hmac).map { HMACKey($0, key: Array(secret.utf8)) },
            algorithms: algorithms,
            leeway: Int64(auth.leewayS ?? Int(Self.defaultLeeway)),
            maxTTL: auth.maxTTLS.map(Int64.init),
            requireSubMatch: auth.requireSubMatch ?? true,
            requiredClaims: (auth.requiredClaims ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    static func oidcRules(_ auth: AuthConfig) throws(ConfigIssue) -> OIDCRules {
        guard let issuer = auth.issuer, let audience = auth.audience else { throw ConfigIssue("auth", "oidc needs issuer and audience") }
        return OIDCRules(
            issuer: issuer, audience: audience,
            algorithms: try self.algorithms(auth.algorithms, default: .rs256),
            leeway: Int64(auth.leewayS ?? Int(Self.defaultLeeway)),
            requiredClaims: (auth.requiredClaims ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
            rolesClaim: auth.rolesClaim ?? "roles",
            requiredRoles: auth.requiredRoles ?? [],
            source: OIDCKeySource.id(issuer: issuer, jwksURI: auth.jwksURI))
    }

    private static func algorithms(_ names: [String]?, default fallback: JWSAlgorithm) throws(ConfigIssue) -> Set<JWSAlgorithm> {
        guard let names else { return [fallback] }
        var set = Set<JWSAlgorithm>()
        for name in names {
            guard let algorithm = JWSAlgorithm(rawValue: name) else { throw ConfigIssue("auth.algorithms", "unknown algorithm \(name)") }
            set.insert(algorithm)
        }
        return set
    }
}

extension ConfigIssue: Error {}
