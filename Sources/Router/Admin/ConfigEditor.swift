import Foundation
import Shared

/// The management API's edits as pure functions over the model: given the
/// model in force and a request, the documents to write and what to answer.
/// No I/O here, so every rule (validation with field paths, conflicts,
/// secrets never read back, tokens shown once) is unit-testable.
enum ConfigEditor {
    /// What a read shows in place of a secret; sent back in a PUT or PATCH
    /// it means "keep the stored value", so a read-modify-write round trip
    /// never has to know the secret.
    static let redacted = "[redacted]"

    enum Failure: Error, Equatable {
        case badRequest(String, [ConfigIssue])
        case notFound(String)
        case conflict(String, [ConfigIssue])
    }

    /// One change to persist: the document (nil: delete it).
    struct Change: Equatable {
        let kind: ConfigKind
        let id: String
        let document: ConfigDocument?
        let created: Bool
    }

    struct Outcome {
        let change: Change
        let model: GatewayConfig
        /// The response body (a redacted resource, maybe with a new token).
        let body: String?
        let status: Int
    }

    // MARK: reads

    static let defaultPageSize = 100
    static let maxPageSize = 1000

    /// One page in id order: up to `limit` documents with ids after
    /// `after`; `next` is the cursor for the following page (null at the
    /// end), as Kong and most REST APIs page.
    static func list(_ kind: ConfigKind, in model: GatewayConfig, limit: Int = Self.defaultPageSize, after: String? = nil) -> String {
        let sorted = ConfigDocument.all(kind, in: model).filter { document in after.map { document.id > $0 } ?? true }.sorted { $0.id < $1.id }
        let page = sorted.prefix(limit)
        let next = sorted.count > limit ? page.last.map { JSON.quoted($0.id) } ?? "null" : "null"
        return "{\"items\":[" + page.map(self.redactedJSON).joined(separator: ",") + "],\"next\":\(next)}"
    }

    static func get(_ kind: ConfigKind, _ id: String, in model: GatewayConfig) throws(Failure) -> String {
        guard let document = ConfigDocument.find(kind, id, in: model) else { throw .notFound("no \(kind.resourceType) \(id)") }
        return self.redactedJSON(document)
    }

    static func listProfiles(client: String, in model: GatewayConfig) throws(Failure) -> String {
        let owner = try self.client(client, in: model)
        return "{\"items\":[" + owner.profiles.map(self.redactedJSON).joined(separator: ",") + "]}"
    }

    static func getProfile(client: String, _ id: String, in model: GatewayConfig) throws(Failure) -> String {
        let owner = try self.client(client, in: model)
        guard let profile = owner.profiles.first(where: { $0.id == id }) else { throw .notFound("client \(client) has no profile \(id)") }
        return self.redactedJSON(profile)
    }

    // MARK: writes to top-level documents

    enum Write { case create, replace, patch }

    static func write(
        _ kind: ConfigKind, id pathID: String?, body: JSONValue, mode: Write, model: GatewayConfig, environment: [String: String]
    ) throws(Failure) -> Outcome {
        var submitted = body
        guard case .object(var members) = submitted else { throw .badRequest("the body must be a JSON object", []) }
        let existing = pathID.flatMap { ConfigDocument.find(kind, $0, in: model) }
        if mode != .create, existing == nil, let pathID { throw .notFound("no \(kind.resourceType) \(pathID)") }
        if mode == .patch, let existing {
            submitted = self.json(existing).mergePatched(with: body)
            guard case .object(let merged) = submitted else { throw .badRequest("the body must be a JSON object", []) }
            members = merged
        }
        if let pathID {
            if let given = members["id"], given != .string(pathID) { throw .badRequest("id cannot change (it is \(pathID))", [ConfigIssue("id", "must be \(pathID)")]) }
            members["id"] = .string(pathID)
        }
        guard let id = members["id"]?.string, !id.isEmpty else { throw .badRequest("id is required", [ConfigIssue("id", "required")]) }
        if let existing { members = self.keepingSecrets(members, from: self.json(existing)) }
        var tokens: [String: String] = [:]
        if kind == .clients { members = try self.issuingTokens(members, tokens: &tokens) }

        let document = try self.decode(kind, .object(members))
        if mode == .create {
            if ConfigDocument.find(kind, id, in: model) != nil { throw .conflict("\(kind.resourceType) \(id) exists", []) }
            if case .client(let client) = document { try self.checkProfileIDsFree(client.profiles.map(\.id), except: nil, in: model) }
        } else if case .client(let client) = document {
            try self.checkProfileIDsFree(client.profiles.map(\.id), except: id, in: model)
        }
        let next: GatewayConfig
        if case .client(let client) = document {
            next = try self.putting(client, into: model, environment: environment)
        } else {
            var set = ConfigDocumentSet(model)
            set.put(document)
            next = set.model(server: model.server)
            try self.validate(next, environment: environment, resource: (kind, id), conflict: false)
        }
        return Outcome(
            change: Change(kind: kind, id: id, document: document, created: mode == .create), model: next,
            body: self.redactedJSON(document, tokens: tokens), status: mode == .create ? 201 : 200)
    }

    static func delete(_ kind: ConfigKind, _ id: String, model: GatewayConfig, environment: [String: String]) throws(Failure) -> Outcome {
        var set = ConfigDocumentSet(model)
        guard set[kind, id] != nil else { throw .notFound("no \(kind.resourceType) \(id)") }
        set.remove(kind, id)
        let next = set.model(server: model.server)
        // What is left no longer validates: something still refers to it.
        try self.validate(next, environment: environment, resource: nil, conflict: true)
        return Outcome(change: Change(kind: kind, id: id, document: nil, created: false), model: next, body: nil, status: 204)
    }

    // MARK: profiles (embedded in their client's document)

    static func writeProfile(
        client clientID: String, id pathID: String?, body: JSONValue, mode: Write, model: GatewayConfig, environment: [String: String]
    ) throws(Failure) -> Outcome {
        var owner = try self.client(clientID, in: model)
        guard case .object(var members) = body else { throw .badRequest("the body must be a JSON object", []) }
        let index = pathID.flatMap { id in owner.profiles.firstIndex { $0.id == id } }
        if mode != .create, index == nil, let pathID { throw .notFound("client \(clientID) has no profile \(pathID)") }
        if mode == .patch, let index {
            guard case .object(let merged) = self.encodable(owner.profiles[index]).mergePatched(with: body) else {
                throw .badRequest("the body must be a JSON object", [])
            }
            members = merged
        }
        if let pathID {
            if let given = members["id"], given != .string(pathID) { throw .badRequest("id cannot change (it is \(pathID))", [ConfigIssue("id", "must be \(pathID)")]) }
            members["id"] = .string(pathID)
        }
        guard let id = members["id"]?.string, !id.isEmpty else { throw .badRequest("id is required", [ConfigIssue("id", "required")]) }
        if let index { members = self.keepingSecrets(members, from: self.encodable(owner.profiles[index])) }
        var token: String? = nil
        members = try self.issuingToken(members, token: &token)
        let profile: ProfileConfig
        do {
            profile = try JSONDecoder().decode(ProfileConfig.self, from: Data(JSONValue.object(members).serialized.utf8))
        } catch let error as DecodingError {
            let described = ConfigLoader.describe(error)
            throw .badRequest(described.description, described.issues)
        } catch {
            throw .badRequest("\(error)", [])
        }
        if mode == .create {
            try self.checkProfileIDsFree([id], except: nil, in: model)
            owner.profiles.append(profile)
        } else if let index {
            owner.profiles[index] = profile
        }
        let next = try self.putting(owner, into: model, environment: environment)
        return Outcome(
            change: Change(kind: .clients, id: clientID, document: .client(owner), created: false), model: next,
            body: self.redactedJSON(profile, token: token), status: mode == .create ? 201 : 200)
    }

    static func deleteProfile(client clientID: String, _ id: String, model: GatewayConfig, environment: [String: String]) throws(Failure) -> Outcome {
        var owner = try self.client(clientID, in: model)
        guard let index = owner.profiles.firstIndex(where: { $0.id == id }) else { throw .notFound("client \(clientID) has no profile \(id)") }
        owner.profiles.remove(at: index)
        // Nothing refers to a profile: removing one cannot break a reference.
        let next = try self.putting(owner, into: model, environment: environment)
        return Outcome(change: Change(kind: .clients, id: clientID, document: .client(owner), created: false), model: next, body: nil, status: 204)
    }

    /// A new token for a `token` profile: returned once, stored as SHA-256.
    static func rotateToken(client clientID: String, _ id: String, model: GatewayConfig, environment: [String: String]) throws(Failure) -> Outcome {
        var owner = try self.client(clientID, in: model)
        guard let index = owner.profiles.firstIndex(where: { $0.id == id }) else { throw .notFound("client \(clientID) has no profile \(id)") }
        guard owner.profiles[index].auth.type == .token else {
            throw .conflict("profile \(id) uses \(owner.profiles[index].auth.type.rawValue) auth; only token profiles have a token to rotate", [])
        }
        guard let token = try? GatewayToken.generate() else { throw .badRequest("no randomness for a token", []) }
        owner.profiles[index].auth.tokenSHA256 = Crypto.sha256(token).hex
        let next = try self.putting(owner, into: model, environment: environment)
        return Outcome(
            change: Change(kind: .clients, id: clientID, document: .client(owner), created: false), model: next,
            body: self.redactedJSON(owner.profiles[index], token: token), status: 200)
    }

    // MARK: helpers

    /// `model` with `client` in place of the client of its id (or added
    /// at the end), validated at the cost of that one client: its
    /// references, secrets and profiles against the rest (profile-id
    /// uniqueness is the callers' `checkProfileIDsFree`). At 100,000
    /// clients a write must not re-validate them all.
    private static func putting(_ client: ClientConfig, into model: GatewayConfig, environment: [String: String]) throws(Failure) -> GatewayConfig {
        var partial = model
        partial.clients = [client]
        try self.validate(partial, environment: environment, resource: (.clients, client.id), conflict: false)
        var next = model
        if let index = next.clients.firstIndex(where: { $0.id == client.id }) {
            next.clients[index] = client
        } else {
            next.clients.append(client)
        }
        return next
    }

    private static func client(_ id: String, in model: GatewayConfig) throws(Failure) -> ClientConfig {
        guard let client = model.clients.first(where: { $0.id == id }) else { throw .notFound("no client \(id)") }
        return client
    }

    private static func checkProfileIDsFree(_ ids: [String], except clientID: String?, in model: GatewayConfig) throws(Failure) {
        var seen = Set<String>()
        for id in ids where !seen.insert(id).inserted { throw .badRequest("profile id \(id) appears twice", [ConfigIssue("profiles", "duplicate id \(id)")]) }
        for client in model.clients where client.id != clientID {
            if let taken = client.profiles.first(where: { seen.contains($0.id) }) {
                throw .conflict("profile id \(taken.id) belongs to client \(client.id) (profile ids are unique across clients)", [])
            }
        }
    }

    private static func decode(_ kind: ConfigKind, _ value: JSONValue) throws(Failure) -> ConfigDocument {
        do {
            return try ConfigDocument.decode(kind, json: Data(value.serialized.utf8))
        } catch {
            throw .badRequest(error.description, error.issues)
        }
    }

    /// Validates the whole next model; issues inside the written resource
    /// are named relative to it (`profiles[0].auth.token_sha256`).
    private static func validate(
        _ model: GatewayConfig, environment: [String: String], resource: (ConfigKind, String)?, conflict: Bool
    ) throws(Failure) {
        do {
            _ = try ConfigLoader.validate(model, environment: environment)
        } catch {
            var prefix: String? = nil
            if let (kind, id) = resource {
                prefix = kind.ids(in: model).firstIndex(of: id).map { "\(kind.rawValue)[\($0)]" }
            }
            let issues = error.issues.map { issue -> ConfigIssue in
                guard let prefix, issue.path.hasPrefix(prefix) else { return issue }
                var rest = issue.path.dropFirst(prefix.count)
                if rest.hasPrefix(".") { rest = rest.dropFirst() }
                return ConfigIssue(String(rest), issue.message)
            }
            let message = issues.map(\.description).joined(separator: "; ")
            if conflict { throw .conflict("still referenced: \(message)", issues) }
            throw .badRequest(message, issues)
        }
    }

    /// Token profiles submitted without `token_sha256` get a fresh token.
    private static func issuingToken(_ profile: [String: JSONValue], token: inout String?) throws(Failure) -> [String: JSONValue] {
        guard profile["auth"]?["type"]?.string == "token", profile["auth"]?["token_sha256"] == nil,
            case .object(var auth)? = profile["auth"]
        else { return profile }
        guard let fresh = try? GatewayToken.generate() else { throw .badRequest("no randomness for a token", []) }
        auth["token_sha256"] = .string(Crypto.sha256(fresh).hex)
        var out = profile
        out["auth"] = .object(auth)
        token = fresh
        return out
    }

    private static func issuingTokens(_ client: [String: JSONValue], tokens: inout [String: String]) throws(Failure) -> [String: JSONValue] {
        guard case .array(let profiles)? = client["profiles"] else { return client }
        var out = client
        var issued: [JSONValue] = []
        for profile in profiles {
            guard case .object(let members) = profile else {
                issued.append(profile)
                continue
            }
            var token: String? = nil
            issued.append(.object(try self.issuingToken(members, token: &token)))
            if let token, let id = members["id"]?.string { tokens[id] = token }
        }
        out["profiles"] = .array(issued)
        return out
    }

    /// Puts stored secrets back where the submission says `[redacted]`.
    static func keepingSecrets(_ submitted: [String: JSONValue], from stored: JSONValue) -> [String: JSONValue] {
        var out = submitted
        for (key, value) in submitted {
            if value == .string(Self.redacted), AuditEntry.secretKeys.contains(key), let original = stored[key] {
                out[key] = original
            } else if case .object(let inner) = value, let storedInner = stored[key] {
                out[key] = .object(self.keepingSecrets(inner, from: storedInner))
            } else if case .array(let items) = value, case .array(let storedItems)? = stored[key] {
                // Profiles are matched by id, not position.
                out[key] = .array(
                    items.map { item in
                        guard case .object(let inner) = item, let id = inner["id"],
                            let match = storedItems.first(where: { $0["id"] == id })
                        else { return item }
                        return .object(self.keepingSecrets(inner, from: match))
                    })
            }
        }
        return out
    }

    static func json(_ document: ConfigDocument) -> JSONValue {
        (try? JSONValue.parse(Array(document.json()))) ?? .object([:])
    }

    private static func encodable<T: Encodable>(_ value: T) -> JSONValue {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value), let parsed = try? JSONValue.parse(Array(data)) else { return .object([:]) }
        return parsed
    }

    private static func redactedJSON(_ document: ConfigDocument) -> String {
        self.redactedJSON(document, tokens: [:])
    }

    private static func redactedJSON(_ document: ConfigDocument, tokens: [String: String]) -> String {
        var value = self.json(document).redacting(["secret", "value"], with: .string(Self.redacted))
        if !tokens.isEmpty, case .object(var members) = value {
            members["tokens"] = .object(tokens.mapValues { .string($0) })
            value = .object(members)
        }
        return value.serialized
    }

    private static func redactedJSON(_ profile: ProfileConfig) -> String {
        self.redactedJSON(profile, token: nil)
    }

    private static func redactedJSON(_ profile: ProfileConfig, token: String?) -> String {
        var value = self.encodable(profile).redacting(["secret", "value"], with: .string(Self.redacted))
        if let token, case .object(var members) = value {
            members["token"] = .string(token)
            value = .object(members)
        }
        return value.serialized
    }
}
