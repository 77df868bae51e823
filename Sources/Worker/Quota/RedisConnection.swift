import CHiredis
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// A Redis reply, copied out of hiredis's reply tree.
enum RedisValue: Equatable, Sendable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RedisValue])

    var integerValue: Int64? {
        switch self {
        case .integer(let value): return value
        case .bulk(let bytes): return Int64(String(decoding: bytes, as: UTF8.self))
        default: return nil
        }
    }
    var text: String? {
        switch self {
        case .status(let text), .error(let text): return text
        case .bulk(let bytes): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }
}

struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    let message: String
    var description: String { self.message }
}

/// The one owner of a hiredis `redisContext`. Blocking: it lives on the
/// quota sync thread and never on an event loop. After any I/O error the
/// context is unusable (hiredis says so), so the connection drops it and the
/// caller reconnects.
final class RedisConnection {
    private var context: UnsafeMutablePointer<redisContext>?

    private init(context: UnsafeMutablePointer<redisContext>) {
        self.context = context
    }

    deinit {
        if let context = self.context { redisFree(context) }
    }

    var isOpen: Bool { self.context != nil }

    /// Connects, authenticates and selects the database, each bounded by
    /// `timeoutMs`; later commands are bounded by the same timeout.
    static func connect(_ endpoint: RedisEndpoint, timeoutMs: Int) throws(RedisError) -> RedisConnection {
        let timeout = timeval(tv_sec: timeoutMs / 1000, tv_usec: (timeoutMs % 1000) * 1000)
        let raw: UnsafeMutablePointer<redisContext>?
        switch endpoint.address {
        case .tcp(let host, let port): raw = redisConnectWithTimeout(host, CInt(port), timeout)
        case .unix(let path): raw = redisConnectUnixWithTimeout(path, timeout)
        }
        guard let raw else { throw RedisError(message: "cannot allocate a redis context") }
        if raw.pointee.err != 0 {
            let message = Self.errorText(raw)
            redisFree(raw)
            throw RedisError(message: "connect to \(endpoint): \(message)")
        }
        let connection = RedisConnection(context: raw)
        guard redisSetTimeout(raw, timeout) == REDIS_OK else {
            throw RedisError(message: "cannot set the redis timeout")
        }
        if let password = endpoint.password {
            let auth = endpoint.username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
            // The error text never includes the password: only Redis's words.
            if case .error(let message) = try connection.command(auth) {
                throw RedisError(message: "redis AUTH failed: \(message)")
            }
        }
        if endpoint.database != 0, case .error(let message) = try connection.command(["SELECT", String(endpoint.database)]) {
            throw RedisError(message: "redis SELECT \(endpoint.database) failed: \(message)")
        }
        return connection
    }

    /// One command, one reply. A Redis error reply is returned, not thrown:
    /// only transport failures throw (and close the connection).
    func command(_ arguments: [String]) throws(RedisError) -> RedisValue {
        try self.pipeline([arguments])[0]
    }

    /// Sends every command in one write and reads the replies in order.
    func pipeline(_ commands: [[String]]) throws(RedisError) -> [RedisValue] {
        guard let context = self.context else { throw RedisError(message: "redis connection is closed") }
        for arguments in commands {
            let appended = Self.withArgv(arguments) { argc, argv, lengths in
                redisAppendCommandArgv(context, argc, argv, lengths)
            }
            guard appended == REDIS_OK else { throw self.fail() }
        }
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer? = nil
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw self.fail() }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            replies.append(Self.value(of: reply))
            freeReplyObject(raw)
        }
        return replies
    }

    func close() {
        if let context = self.context { redisFree(context) }
        self.context = nil
    }

    private func fail() -> RedisError {
        let message = self.context.map { Self.errorText($0) } ?? "closed"
        self.close()
        return RedisError(message: "redis I/O: \(message)")
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
    }

    private static func withArgv<R>(
        _ arguments: [String],
        _ body: (CInt, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
    ) -> R {
        // Arguments are copied into one contiguous buffer: hiredis reads them
        // by pointer and length and copies them into its output buffer.
        var storage: [UInt8] = []
        var offsets: [Int] = []
        var lengths: [Int] = []
        for argument in arguments {
            offsets.append(storage.count)
            lengths.append(argument.utf8.count)
            storage.append(contentsOf: argument.utf8)
        }
        storage.append(0)
        return storage.withUnsafeBufferPointer { bytes in
            let base = UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { lens in
                    body(CInt(arguments.count), argv.baseAddress!, lens.baseAddress!)
                }
            }
        }
    }

    private static func value(of reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        func text() -> String {
            guard let str = r.str else { return "" }
            return String(decoding: UnsafeRawBufferPointer(start: str, count: r.len), as: UTF8.self)
        }
        switch r.type {
        case REDIS_REPLY_STATUS: return .status(text())
        case REDIS_REPLY_ERROR: return .error(text())
        case REDIS_REPLY_INTEGER: return .integer(Int64(r.integer))
        case REDIS_REPLY_STRING:
            guard let str = r.str else { return .bulk([]) }
            return .bulk(Array(UnsafeRawBufferPointer(start: str, count: r.len)))
        case REDIS_REPLY_ARRAY:
            var items: [RedisValue] = []
            items.reserveCapacity(r.elements)
            for index in 0..<r.elements {
                if let element = r.element[index] { items.append(Self.value(of: element)) } else { items.append(.null) }
            }
            return .array(items)
        default:
            return .null
        }
    }
}
