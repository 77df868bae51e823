import CMongoc
import Foundation
import Logging

private let mongocLogger = Logger(label: "libmongoc")

/// The one Swift wrapper over libmongoc/libbson: it owns every pointer the
/// C library hands out. Every call blocks, so none may run on an event
/// loop: the config source has its own threads and the management API runs
/// on a thread pool.

/// A libmongoc or server error: `code` 11000 is a duplicate key.
struct MongoError: Error, CustomStringConvertible, Sendable {
    let domain: UInt32
    let code: UInt32
    let message: String

    init(_ error: bson_error_t) {
        var copy = error
        self.domain = error.domain
        self.code = error.code
        self.message = String(cString: pcl_bson_error_message(&copy))
    }

    init(message: String) {
        self.domain = 0
        self.code = 0
        self.message = message
    }

    var isDuplicateKey: Bool { self.code == 11000 || self.code == 11001 }
    var description: String { self.message }
}

/// An owned BSON document (heap `bson_t`).
final class BSONDocument: @unchecked Sendable {
    /// A `bson_t *`: Swift sees the 128-byte aligned struct only as opaque.
    let pointer: OpaquePointer

    private init(owning pointer: OpaquePointer) {
        self.pointer = pointer
    }

    /// Parses (relaxed or canonical extended) JSON.
    convenience init(json: String) throws(MongoError) {
        var error = bson_error_t()
        let made = json.withCString { text in bson_new_from_json(UnsafeRawPointer(text).assumingMemoryBound(to: UInt8.self), -1, &error) }
        guard let made else { throw MongoError(error) }
        self.init(owning: made)
    }

    /// Copies a document the C library owns (a cursor's current one).
    convenience init(copying pointer: OpaquePointer) {
        self.init(owning: bson_copy(pointer))
    }

    deinit { bson_destroy(self.pointer) }

    /// Relaxed extended JSON: integers as plain numbers, which is what the
    /// config model's decoders read.
    var json: String {
        var length = 0
        guard let text = bson_as_relaxed_extended_json(self.pointer, &length) else { return "{}" }
        defer { bson_free(text) }
        return String(cString: text)
    }

    /// The same document with the top-level key `from` called `to` (first).
    func renaming(_ from: String, to: String) -> BSONDocument {
        BSONDocument(owning: pcl_bson_copy_renaming(self.pointer, from, to))
    }

    func int64(_ key: String) -> Int64? {
        var value: Int64 = 0
        return pcl_bson_get_int64(self.pointer, key, &value) ? value : nil
    }

    func string(_ key: String) -> String? {
        pcl_bson_get_utf8(self.pointer, key).map { String(cString: $0) }
    }

    /// A sub-document such as a change event's `ns` or `documentKey`.
    func document(_ key: String) -> BSONDocument? {
        pcl_bson_get_document(self.pointer, key).map { BSONDocument(owning: $0) }
    }
}

/// A pool of connections to one deployment; thread-safe. Timeouts are
/// short unless the URI sets them, so a MongoDB that went away costs a
/// caller seconds, not the driver's default minutes.
final class MongoPool: @unchecked Sendable {
    private let pool: OpaquePointer
    /// The URI without its password, for logs and `/readyz`.
    let displayURI: String

    private static let initialized: Bool = {
        mongoc_init()
        // libmongoc's own lines ("stream: Failed to buffer 4 bytes") would
        // go to stderr unformatted; every failure reaches us as an error we
        // log with context, so its lines are kept for debug level only.
        mongoc_log_set_handler({ level, domain, message, _ in
            let text = message.map { String(cString: $0) } ?? ""
            let metadata: Logger.Metadata = ["domain": "\(domain.map { String(cString: $0) } ?? "")"]
            if level.rawValue <= MONGOC_LOG_LEVEL_ERROR.rawValue {
                mongocLogger.error("\(text)", metadata: metadata)
            } else {
                mongocLogger.debug("\(text)", metadata: metadata)
            }
        }, nil)
        return true
    }()

    init(uri text: String, appName: String = "portcullis") throws(MongoError) {
        _ = Self.initialized
        var error = bson_error_t()
        guard let uri = mongoc_uri_new_with_error(text, &error) else { throw MongoError(error) }
        defer { mongoc_uri_destroy(uri) }
        for (option, value) in [
            (MONGOC_URI_SERVERSELECTIONTIMEOUTMS, Int32(2_000)), (MONGOC_URI_CONNECTTIMEOUTMS, 2_000), (MONGOC_URI_SOCKETTIMEOUTMS, 10_000),
        ] where mongoc_uri_get_option_as_int32(uri, option, 0) == 0 {
            mongoc_uri_set_option_as_int32(uri, option, value)
        }
        guard let pool = mongoc_client_pool_new(uri) else { throw MongoError(message: "cannot create a client pool for the MongoDB URI") }
        mongoc_client_pool_set_error_api(pool, Int32(MONGOC_ERROR_API_VERSION_2))
        _ = mongoc_client_pool_set_appname(pool, appName)
        self.pool = pool
        self.displayURI = Self.redacted(text)
    }

    deinit { mongoc_client_pool_destroy(self.pool) }

    /// Runs `body` with a client of the pool (one thread at a time each).
    func withClient<T, E: Error>(_ body: (MongoClient) throws(E) -> T) throws(E) -> T {
        let client = mongoc_client_pool_pop(self.pool)!
        defer { mongoc_client_pool_push(self.pool, client) }
        return try body(MongoClient(pointer: client))
    }

    /// `mongodb://user:***@host` for display.
    static func redacted(_ uri: String) -> String {
        guard let scheme = uri.range(of: "://"), let at = uri[scheme.upperBound...].firstIndex(of: "@") else { return uri }
        let credentials = uri[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return uri }
        return String(uri[..<colon]) + ":***" + String(uri[at...])
    }
}

/// A client borrowed from the pool for one call; never kept.
struct MongoClient {
    fileprivate let pointer: OpaquePointer

    func collection(_ database: String, _ name: String) -> MongoCollection {
        MongoCollection(pointer: mongoc_client_get_collection(self.pointer, database, name))
    }

    /// `{ping: 1}` against the admin database: is anything answering?
    func ping() throws(MongoError) {
        _ = try self.command("admin", BSONDocument(json: "{\"ping\": 1}"))
    }

    /// Runs a database command and returns the server's reply.
    func command(_ database: String, _ command: BSONDocument) throws(MongoError) -> BSONDocument {
        let reply = ReplyBuffer()
        var error = bson_error_t()
        guard mongoc_client_command_simple(self.pointer, database, command.pointer, nil, reply.pointer, &error) else {
            throw MongoError(error)
        }
        return reply.document()
    }
}

/// A reply document the driver fills in; always freed.
private final class ReplyBuffer {
    let pointer: OpaquePointer = pcl_reply_new()

    func document() -> BSONDocument { BSONDocument(copying: self.pointer) }

    deinit { pcl_reply_free(self.pointer) }
}

final class MongoCollection {
    private let pointer: OpaquePointer

    fileprivate init(pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit { mongoc_collection_destroy(self.pointer) }

    func find(_ filter: BSONDocument, options: BSONDocument? = nil) throws(MongoError) -> [BSONDocument] {
        let cursor = mongoc_collection_find_with_opts(self.pointer, filter.pointer, options?.pointer, nil)!
        defer { mongoc_cursor_destroy(cursor) }
        var out: [BSONDocument] = []
        var current: OpaquePointer? = nil
        while mongoc_cursor_next(cursor, &current) {
            if let current { out.append(BSONDocument(copying: current)) }
        }
        var error = bson_error_t()
        if mongoc_cursor_error(cursor, &error) { throw MongoError(error) }
        return out
    }

    func insertOne(_ document: BSONDocument) throws(MongoError) {
        let reply = ReplyBuffer()
        var error = bson_error_t()
        guard mongoc_collection_insert_one(self.pointer, document.pointer, nil, reply.pointer, &error) else { throw MongoError(error) }
    }

    /// Returns how many documents matched (an upsert that inserted: 0).
    @discardableResult
    func replaceOne(_ filter: BSONDocument, with document: BSONDocument, upsert: Bool) throws(MongoError) -> Int64 {
        let reply = ReplyBuffer()
        var error = bson_error_t()
        let options = try BSONDocument(json: upsert ? "{\"upsert\": true}" : "{}")
        guard mongoc_collection_replace_one(self.pointer, filter.pointer, document.pointer, options.pointer, reply.pointer, &error) else {
            throw MongoError(error)
        }
        return reply.document().int64("matchedCount") ?? 0
    }

    @discardableResult
    func updateOne(_ filter: BSONDocument, update: BSONDocument, upsert: Bool) throws(MongoError) -> Int64 {
        let reply = ReplyBuffer()
        var error = bson_error_t()
        let options = try BSONDocument(json: upsert ? "{\"upsert\": true}" : "{}")
        guard mongoc_collection_update_one(self.pointer, filter.pointer, update.pointer, options.pointer, reply.pointer, &error) else {
            throw MongoError(error)
        }
        return reply.document().int64("matchedCount") ?? 0
    }

    /// Returns how many documents were deleted.
    @discardableResult
    func deleteOne(_ filter: BSONDocument) throws(MongoError) -> Int64 {
        let reply = ReplyBuffer()
        var error = bson_error_t()
        guard mongoc_collection_delete_one(self.pointer, filter.pointer, nil, reply.pointer, &error) else { throw MongoError(error) }
        return reply.document().int64("deletedCount") ?? 0
    }

    @discardableResult
    func deleteMany(_ filter: BSONDocument) throws(MongoError) -> Int64 {
        let reply = ReplyBuffer()
        var error = bson_error_t()
        guard mongoc_collection_delete_many(self.pointer, filter.pointer, nil, reply.pointer, &error) else { throw MongoError(error) }
        return reply.document().int64("deletedCount") ?? 0
    }

    /// A change stream on this collection. Servers without change streams
    /// (a standalone mongod) report that on the first `next`.
    func watch(maxAwaitMs: Int) throws(MongoError) -> MongoChangeStream {
        let pipeline = try BSONDocument(json: "{\"pipeline\": []}")
        let options = try BSONDocument(json: "{\"maxAwaitTimeMS\": \(maxAwaitMs)}")
        return MongoChangeStream(pointer: mongoc_collection_watch(self.pointer, pipeline.pointer, options.pointer))
    }
}

final class MongoChangeStream {
    private let pointer: OpaquePointer

    fileprivate init(pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit { mongoc_change_stream_destroy(self.pointer) }

    /// The next change, nil when none arrived within the await time.
    func next() throws(MongoError) -> BSONDocument? {
        var current: OpaquePointer? = nil
        if mongoc_change_stream_next(self.pointer, &current), let current { return BSONDocument(copying: current) }
        var error = bson_error_t()
        var reply: OpaquePointer? = nil
        if mongoc_change_stream_error_document(self.pointer, &error, &reply) { throw MongoError(error) }
        return nil
    }
}

extension MongoError: LocalizedError {
    var errorDescription: String? { self.description }
}
