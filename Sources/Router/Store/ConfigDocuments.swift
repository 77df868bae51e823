import Foundation
import Shared

/// The four kinds of config document, one MongoDB collection each (SPEC §9):
/// each document is the YAML object with `id` stored as `_id`.
enum ConfigKind: String, CaseIterable, Sendable, Codable {
    case policies, collections, credentials, clients

    /// The ids of this kind's documents in `model`, in model order.
    func ids(in model: GatewayConfig) -> [String] {
        switch self {
        case .policies: return model.policies.map(\.id)
        case .collections: return model.collections.map(\.id)
        case .credentials: return model.credentials.map(\.id)
        case .clients: return model.clients.map(\.id)
        }
    }

    /// The singular, for audit entries and messages.
    var resourceType: String {
        switch self {
        case .policies: return "policy"
        case .collections: return "collection"
        case .credentials: return "credential"
        case .clients: return "client"
        }
    }
}

/// One decoded document of any kind.
enum ConfigDocument: Sendable, Equatable {
    case policy(PolicyConfig)
    case collection(CollectionConfig)
    case credential(CredentialConfig)
    case client(ClientConfig)

    var id: String {
        switch self {
        case .policy(let v): return v.id
        case .collection(let v): return v.id
        case .credential(let v): return v.id
        case .client(let v): return v.id
        }
    }

    var kind: ConfigKind {
        switch self {
        case .policy: return .policies
        case .collection: return .collections
        case .credential: return .credentials
        case .client: return .clients
        }
    }

    /// Decodes the model's JSON form (with `id`), naming the field of a
    /// type error (`profiles[0].auth.type`).
    static func decode(_ kind: ConfigKind, json: Data) throws(ConfigError) -> ConfigDocument {
        let decoder = JSONDecoder()
        do {
            switch kind {
            case .policies: return .policy(try decoder.decode(PolicyConfig.self, from: json))
            case .collections: return .collection(try decoder.decode(CollectionConfig.self, from: json))
            case .credentials: return .credential(try decoder.decode(CredentialConfig.self, from: json))
            case .clients: return .client(try decoder.decode(ClientConfig.self, from: json))
            }
        } catch let error as DecodingError {
            throw ConfigLoader.describe(error)
        } catch {
            throw ConfigError("", "not a JSON object: \(error)")
        }
    }

    /// Every document of `kind` in `model`, in model order.
    static func all(_ kind: ConfigKind, in model: GatewayConfig) -> [ConfigDocument] {
        switch kind {
        case .policies: return model.policies.map(ConfigDocument.policy)
        case .collections: return model.collections.map(ConfigDocument.collection)
        case .credentials: return model.credentials.map(ConfigDocument.credential)
        case .clients: return model.clients.map(ConfigDocument.client)
        }
    }

    /// The document of `kind` and `id` in `model`, without indexing it all.
    static func find(_ kind: ConfigKind, _ id: String, in model: GatewayConfig) -> ConfigDocument? {
        switch kind {
        case .policies: return model.policies.first { $0.id == id }.map(ConfigDocument.policy)
        case .collections: return model.collections.first { $0.id == id }.map(ConfigDocument.collection)
        case .credentials: return model.credentials.first { $0.id == id }.map(ConfigDocument.credential)
        case .clients: return model.clients.first { $0.id == id }.map(ConfigDocument.client)
        }
    }

    /// The model's JSON form (with `id`), keys sorted.
    func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding the model's own Codable values cannot fail.
        switch self {
        case .policy(let v): return (try? encoder.encode(v)) ?? Data("{}".utf8)
        case .collection(let v): return (try? encoder.encode(v)) ?? Data("{}".utf8)
        case .credential(let v): return (try? encoder.encode(v)) ?? Data("{}".utf8)
        case .client(let v): return (try? encoder.encode(v)) ?? Data("{}".utf8)
        }
    }
}

/// The model as documents by kind and id, in the order a model lists them.
struct ConfigDocumentSet: Sendable, Equatable {
    var documents: [ConfigKind: [String: ConfigDocument]] = [:]

    init() {}

    init(_ model: GatewayConfig) {
        for kind in ConfigKind.allCases {
            for document in ConfigDocument.all(kind, in: model) { self.put(document) }
        }
    }

    mutating func put(_ document: ConfigDocument) {
        self.documents[document.kind, default: [:]][document.id] = document
    }

    mutating func remove(_ kind: ConfigKind, _ id: String) {
        self.documents[kind]?.removeValue(forKey: id)
    }

    subscript(kind: ConfigKind, id: String) -> ConfigDocument? {
        self.documents[kind]?[id]
    }

    func ids(_ kind: ConfigKind) -> [String] { (self.documents[kind] ?? [:]).keys.sorted() }

    /// The model with `server`; documents sorted by id so equal sets give
    /// equal models.
    func model(server: ServerConfig) -> GatewayConfig {
        func all<T>(_ kind: ConfigKind, _ pick: (ConfigDocument) -> T?) -> [T] {
            self.ids(kind).compactMap { self.documents[kind]?[$0].flatMap(pick) }
        }
        return GatewayConfig(
            server: server,
            collections: all(.collections) { if case .collection(let v) = $0 { return v } else { return nil } },
            policies: all(.policies) { if case .policy(let v) = $0 { return v } else { return nil } },
            credentials: all(.credentials) { if case .credential(let v) = $0 { return v } else { return nil } },
            clients: all(.clients) { if case .client(let v) = $0 { return v } else { return nil } })
    }
}

/// Builds the model in force from what the database holds. A document that
/// does not decode, validate or resolve is skipped with a log line and its
/// previous accepted version stays (SPEC §9), so one bad write cannot take
/// a whole instance's config down.
struct ConfigAssembler {
    struct Outcome {
        let config: ValidatedConfig
        /// The documents in force (the next round's "previous versions").
        let accepted: ConfigDocumentSet
        /// Documents left out or held at their previous version, with why.
        let skipped: [(kind: ConfigKind, id: String, reason: String)]
    }

    /// `latest`: what decoded; `undecodable`: ids whose stored form did
    /// not decode (with why); `accepted`: the last documents in force.
    static func assemble(
        latest: ConfigDocumentSet, undecodable: [(ConfigKind, String, String)], accepted: ConfigDocumentSet,
        server: ServerConfig, environment: [String: String]
    ) -> Result<Outcome, ConfigError> {
        var working = latest
        var skipped: [(kind: ConfigKind, id: String, reason: String)] = []
        for (kind, id, reason) in undecodable {
            skipped.append((kind, id, reason))
            if let previous = accepted[kind, id] { working.put(previous) }
        }
        // Each round holds back the documents named by the issues; a held
        // back document can only remove references, so a few rounds settle.
        for _ in 0..<6 {
            let model = working.model(server: server)
            let issues: [ConfigIssue]
            do {
                let config = try ConfigLoader.validate(model, environment: environment)
                return .success(Outcome(config: config, accepted: working, skipped: skipped))
            } catch {
                issues = error.issues
            }
            var culprits: [(ConfigKind, String, String)] = []
            for issue in issues {
                guard let (kind, id) = Self.document(named: issue.path, in: model) else {
                    // A server-level issue: the file's problem, not a document's.
                    return .failure(ConfigError(issues))
                }
                culprits.append((kind, id, issue.description))
            }
            for (kind, id, reason) in culprits {
                let previous = accepted[kind, id]
                if let current = working[kind, id], current == previous || previous == nil {
                    working.remove(kind, id)
                } else if let previous {
                    working.put(previous)
                }
                skipped.append((kind, id, reason))
            }
        }
        return .failure(ConfigError("", "documents keep failing validation: " + skipped.map { "\($0.kind.rawValue)/\($0.id): \($0.reason)" }.joined(separator: "; ")))
    }

    /// `clients[3].profiles[0].auth` → (.clients, id of the fourth client).
    static func document(named path: String, in model: GatewayConfig) -> (ConfigKind, String)? {
        for kind in ConfigKind.allCases where path.hasPrefix(kind.rawValue + "[") {
            let rest = path.dropFirst(kind.rawValue.count + 1)
            guard let close = rest.firstIndex(of: "]"), let index = Int(rest[..<close]) else { return nil }
            let ids = kind.ids(in: model)
            return ids.indices.contains(index) ? (kind, ids[index]) : nil
        }
        return nil
    }
}
