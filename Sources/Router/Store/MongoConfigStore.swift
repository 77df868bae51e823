import Foundation
import Shared

/// The config model and the audit log in MongoDB (SPEC §9): database
/// `portcullis`, collections `clients` (profiles embedded), `policies`,
/// `collections`, `credentials`, `audit_log`, each document the YAML object
/// with `id` as `_id`. Plus one document, `meta/_id: "config"`, whose
/// `version` every write through Portcullis increments: instances on a
/// server without change streams poll it (a direct write into MongoDB there
/// must increment it too, or waits for the periodic full read).
/// Blocking; thread-safe (each call borrows a pooled client).
final class MongoConfigStore: @unchecked Sendable {
    static let database = "portcullis"
    static let metaCollection = "meta"
    static let auditCollection = "audit_log"

    let pool: MongoPool

    init(uri: String) throws(MongoError) {
        self.pool = try MongoPool(uri: uri)
    }

    var displayURI: String { self.pool.displayURI }

    func ping() throws(MongoError) {
        try self.pool.withClient { client throws(MongoError) in try client.ping() }
    }

    /// The indexes the lookups need. `clients.profiles._id`-style lookups
    /// go by profile id (unique across clients, SPEC §4); audit queries by
    /// time, actor and resource. A server that cannot build one (some
    /// MongoDB-compatible servers) is logged by the caller, not fatal.
    func ensureIndexes() throws(MongoError) {
        let commands: [(String, String)] = [
            ("clients", #"[{"key": {"profiles.id": 1}, "name": "profile_id", "unique": true, "sparse": true}]"#),
            (Self.auditCollection, #"[{"key": {"time": -1}, "name": "time"}, {"key": {"actor.id": 1, "time": -1}, "name": "actor_time"}, {"key": {"resource_type": 1, "resource_id": 1, "time": -1}, "name": "resource_time"}]"#),
        ]
        try self.pool.withClient { client throws(MongoError) in
            for (collection, indexes) in commands {
                _ = try client.command(Self.database, BSONDocument(json: "{\"createIndexes\": \(JSON.quoted(collection)), \"indexes\": \(indexes)}"))
            }
        }
    }

    // MARK: config documents

    struct RawDocument: Sendable {
        let kind: ConfigKind
        let id: String
        /// The model's JSON form (`_id` renamed to `id`).
        let json: String
    }

    func loadAll() throws(MongoError) -> [RawDocument] {
        try self.pool.withClient { client throws(MongoError) in
            var out: [RawDocument] = []
            for kind in ConfigKind.allCases {
                // Large batches: 100k clients in ~20 round trips, not ~1,000.
                let documents = try client.collection(Self.database, kind.rawValue).find(
                    BSONDocument(json: "{}"), options: BSONDocument(json: "{\"batchSize\": 5000}"))
                for document in documents {
                    guard let id = document.string("_id") else { continue }
                    out.append(RawDocument(kind: kind, id: id, json: document.renaming("_id", to: "id").json))
                }
            }
            return out
        }
    }

    /// One document, nil when it no longer exists.
    func load(_ kind: ConfigKind, id: String) throws(MongoError) -> RawDocument? {
        try self.pool.withClient { client throws(MongoError) in
            let found = try client.collection(Self.database, kind.rawValue).find(Self.idFilter(id), options: BSONDocument(json: "{\"limit\": 1}"))
            return found.first.map { RawDocument(kind: kind, id: id, json: $0.renaming("_id", to: "id").json) }
        }
    }

    enum WriteMode { case create, replace, upsert }

    enum WriteError: Error {
        case exists
        case notFound
        case store(MongoError)
    }

    func write(_ document: ConfigDocument, mode: WriteMode) throws(WriteError) {
        let found: Bool
        do {
            let bson = try BSONDocument(json: String(decoding: document.json(), as: UTF8.self)).renaming("id", to: "_id")
            found = try self.pool.withClient { client throws(MongoError) -> Bool in
                let collection = client.collection(Self.database, document.kind.rawValue)
                switch mode {
                case .create: try collection.insertOne(bson)
                case .replace:
                    guard try collection.replaceOne(Self.idFilter(document.id), with: bson, upsert: false) > 0 else { return false }
                case .upsert: try collection.replaceOne(Self.idFilter(document.id), with: bson, upsert: true)
                }
                try self.bumpVersion(client)
                return true
            }
        } catch {
            throw error.isDuplicateKey ? .exists : .store(error)
        }
        if !found { throw .notFound }
    }

    /// True when a document was deleted.
    func delete(_ kind: ConfigKind, id: String) throws(MongoError) -> Bool {
        try self.pool.withClient { client throws(MongoError) in
            let deleted = try client.collection(Self.database, kind.rawValue).deleteOne(Self.idFilter(id))
            if deleted > 0 { try self.bumpVersion(client) }
            return deleted > 0
        }
    }

    /// Makes the database hold exactly `model`'s documents. Referenced
    /// kinds are written before the documents that name them, and clients
    /// are removed before what they name, so a watcher never sees a client
    /// pointing at a policy that is not there yet.
    func replaceAll(with model: GatewayConfig) throws(MongoError) {
        let wanted = ConfigDocumentSet(model)
        try self.pool.withClient { client throws(MongoError) in
            var existing: [ConfigKind: Set<String>] = [:]
            for kind in ConfigKind.allCases {
                let ids = try client.collection(Self.database, kind.rawValue).find(BSONDocument(json: "{}"), options: BSONDocument(json: "{\"projection\": {\"_id\": 1}}"))
                existing[kind] = Set(ids.compactMap { $0.string("_id") })
            }
            for kind in ConfigKind.allCases {
                let collection = client.collection(Self.database, kind.rawValue)
                for id in wanted.ids(kind) {
                    guard let document = wanted[kind, id] else { continue }
                    let bson = try BSONDocument(json: String(decoding: document.json(), as: UTF8.self)).renaming("id", to: "_id")
                    try collection.replaceOne(Self.idFilter(id), with: bson, upsert: true)
                }
            }
            for kind in ConfigKind.allCases.reversed() {
                let collection = client.collection(Self.database, kind.rawValue)
                for id in (existing[kind] ?? []).subtracting(wanted.ids(kind)).sorted() {
                    try collection.deleteOne(Self.idFilter(id))
                }
            }
            try self.bumpVersion(client)
        }
    }

    // MARK: version counter

    func version() throws(MongoError) -> Int64 {
        try self.pool.withClient { client throws(MongoError) in
            let found = try client.collection(Self.database, Self.metaCollection).find(Self.idFilter("config"))
            return found.first?.int64("version") ?? 0
        }
    }

    private func bumpVersion(_ client: MongoClient) throws(MongoError) {
        try client.collection(Self.database, Self.metaCollection).updateOne(
            Self.idFilter("config"), update: BSONDocument(json: #"{"$inc": {"version": 1}}"#), upsert: true)
    }

    // MARK: audit log

    func appendAudit(_ entry: AuditEntry) throws(MongoError) {
        let bson = try BSONDocument(json: entry.json()).renaming("id", to: "_id")
        try self.pool.withClient { client throws(MongoError) in
            try client.collection(Self.database, Self.auditCollection).insertOne(bson)
        }
    }

    func listAudit(_ query: AuditQuery) throws(MongoError) -> [String] {
        var filter: [String] = []
        var time: [String] = []
        if let since = query.since { time.append("\"$gte\": \(JSON.quoted(since))") }
        if let until = query.until { time.append("\"$lt\": \(JSON.quoted(until))") }
        if !time.isEmpty { filter.append("\"time\": {\(time.joined(separator: ", "))}") }
        if let actor = query.actor { filter.append("\"actor.id\": \(JSON.quoted(actor))") }
        if let type = query.resourceType { filter.append("\"resource_type\": \(JSON.quoted(type))") }
        if let id = query.resourceID { filter.append("\"resource_id\": \(JSON.quoted(id))") }
        let filterJSON = "{\(filter.joined(separator: ", "))}"
        let options = "{\"sort\": {\"time\": -1, \"_id\": -1}, \"limit\": \(query.limit)}"
        return try self.pool.withClient { client throws(MongoError) in
            let found = try client.collection(Self.database, Self.auditCollection).find(
                BSONDocument(json: filterJSON), options: BSONDocument(json: options))
            return found.map { $0.renaming("_id", to: "id").json }
        }
    }

    func deleteAudit(id: String) throws(MongoError) -> Bool {
        try self.pool.withClient { client throws(MongoError) in
            try client.collection(Self.database, Self.auditCollection).deleteOne(Self.idFilter(id)) > 0
        }
    }

    private static func idFilter(_ id: String) throws(MongoError) -> BSONDocument {
        try BSONDocument(json: "{\"_id\": \(JSON.quoted(id))}")
    }
}
