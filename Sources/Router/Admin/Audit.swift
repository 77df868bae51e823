import Foundation
import NIOConcurrencyHelpers
import Shared

/// One audited change (SPEC §6): who, what, where from, and the outcome.
struct AuditEntry: Sendable {
    let id: String
    /// RFC 3339 UTC with milliseconds: sorts and range-filters as text.
    let time: String
    let actorID: String
    let actorType: String
    /// create, update, delete, rotate.
    let action: String
    let resourceType: String
    let resourceID: String
    let method: String
    let path: String
    let sourceIP: String
    let userAgent: String
    let requestID: String
    /// The submitted body with every secret replaced; nil without a body.
    let body: JSONValue?
    let status: Int

    /// Keys whose values never reach the audit log (or any read).
    static let secretKeys: Set<String> = ["secret", "value", "token", "password"]

    func json() -> String {
        let members: [(String, String)] = [
            ("id", JSON.quoted(self.id)), ("time", JSON.quoted(self.time)),
            ("actor", "{\"id\":\(JSON.quoted(self.actorID)),\"type\":\(JSON.quoted(self.actorType))}"),
            ("action", JSON.quoted(self.action)), ("resource_type", JSON.quoted(self.resourceType)),
            ("resource_id", JSON.quoted(self.resourceID)), ("method", JSON.quoted(self.method)), ("path", JSON.quoted(self.path)),
            ("source_ip", JSON.quoted(self.sourceIP)), ("user_agent", JSON.quoted(self.userAgent)),
            ("request_id", JSON.quoted(self.requestID)),
            ("body", self.body.map { $0.redacting(Self.secretKeys).serialized } ?? "null"), ("status", String(self.status)),
        ]
        return "{" + members.map { "\(JSON.quoted($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    static func timestamp(_ date: Date = Date()) -> String {
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var tm = tm()
        var seconds = time_t(millis / 1000)
        gmtime_r(&seconds, &tm)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday), Int(tm.tm_hour),
            Int(tm.tm_min), Int(tm.tm_sec), Int(millis % 1000))
    }

    /// Sortable ids: the time in hex, then randomness.
    static func newID(_ date: Date = Date()) -> String {
        let millis = UInt64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let random = (try? Crypto.randomBytes(6)) ?? Array(repeating: 0, count: 6)
        return String(millis, radix: 16) + Hex.encode(random)
    }
}

struct AuditQuery: Sendable {
    var since: String? = nil
    var until: String? = nil
    var actor: String? = nil
    var resourceType: String? = nil
    var resourceID: String? = nil
    var limit: Int = 100

    func matches(_ entry: JSONValue) -> Bool {
        guard let time = entry["time"]?.string else { return false }
        if let since, time < since { return false }
        if let until, time >= until { return false }
        if let actor, entry["actor"]?["id"]?.string != actor { return false }
        if let resourceType, entry["resource_type"]?.string != resourceType { return false }
        if let resourceID, entry["resource_id"]?.string != resourceID { return false }
        return true
    }
}

/// The audit log without MongoDB: one JSON object per line in a file
/// beside the config. Appends are single `write`s with O_APPEND; a deletion
/// rewrites the file to a temporary and renames it over. Thread-safe.
final class FileAuditLog: @unchecked Sendable {
    let path: String
    private let lock = NIOLock()

    init(path: String) {
        self.path = path
    }

    func append(_ entry: AuditEntry) throws {
        let line = Array((entry.json() + "\n").utf8)
        try self.lock.withLock {
            let fd = open(self.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw StoreFileError(message: "cannot open \(self.path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == line.count else { throw StoreFileError(message: "short write to \(self.path)") }
        }
    }

    private func entries() -> [(line: String, value: JSONValue)] {
        guard let text = try? String(contentsOfFile: self.path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            (try? JSONValue.parse(Array(line.utf8))).map { (String(line), $0) }
        }
    }

    func list(_ query: AuditQuery) -> [String] {
        self.lock.withLock {
            let matching = self.entries().filter { query.matches($0.value) }
            return matching.sorted { ($0.value["time"]?.string ?? "", $0.value["id"]?.string ?? "") > ($1.value["time"]?.string ?? "", $1.value["id"]?.string ?? "") }
                .prefix(query.limit).map(\.line)
        }
    }

    func delete(id: String) throws -> Bool {
        try self.lock.withLock {
            let all = self.entries()
            let kept = all.filter { $0.value["id"]?.string != id }
            guard kept.count < all.count else { return false }
            try AtomicFile.write(kept.map { $0.line + "\n" }.joined(), to: self.path, mode: 0o600)
            return true
        }
    }
}

struct StoreFileError: Error, CustomStringConvertible {
    let message: String
    var description: String { self.message }
}

/// Writes a file so that readers see the old or the new content, never a
/// mix: a temporary beside it, fsync, rename over.
enum AtomicFile {
    static func write(_ text: String, to path: String, mode: mode_t = 0o644) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw StoreFileError(message: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n <= 0 {
                if n < 0, errno == EINTR { continue }
                close(fd)
                unlink(temporary)
                throw StoreFileError(message: "cannot write \(temporary): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        fsync(fd)
        close(fd)
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw StoreFileError(message: "cannot replace \(path): \(String(cString: strerror(errno)))")
        }
    }
}
