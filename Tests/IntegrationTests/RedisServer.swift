import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` on a free loopback port, without persistence (so a
/// kill and restart comes back empty: the harshest case for quota sharing).
/// Talked to with `redis-cli`, which Debian's redis-server package brings.
final class RedisServer {
    let port: Int
    let directory: URL
    private var child: ChildProcess?
    private var starts = 0
    /// `requirepass`, when set: the URL carries it, redis-cli gets it.
    let password: String?
    /// Set when this server made its own scratch directory and so removes it.
    private let ownsDirectory: Bool

    init(directory: URL, password: String? = nil) throws {
        self.port = Ports.free()
        self.directory = directory
        self.password = password
        self.ownsDirectory = false
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try self.start()
    }

    /// A server in a fresh scratch directory of its own, removed when the
    /// server goes away (a test that stops early leaves nothing in /tmp).
    init() throws {
        self.port = Ports.free()
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("pcl-redis-\(UUID().uuidString)")
        self.password = nil
        self.ownsDirectory = true
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try self.start()
    }

    var url: String { "redis://\(self.password.map { ":\($0)@" } ?? "")127.0.0.1:\(self.port)/0" }

    static var binary: String {
        for candidate in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return "redis-server"
    }

    func start() throws {
        self.starts += 1
        self.child = try ChildProcess(
            Self.binary,
            ["--port", String(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes"]
                + (self.password.map { ["--requirepass", $0] } ?? []),
            directory: self.directory, name: "redis-\(self.starts)")
        try waitUntil(10, "redis-server to answer PING") { (try? self.cli("PING")) == "PONG" }
    }

    /// SIGKILL: no shutdown save, no goodbye to clients.
    func kill() {
        guard let child = self.child else { return }
        child.signal(SIGKILL)
        child.process.waitUntilExit()
        self.child = nil
    }

    func stop() {
        self.child?.stop()
        self.child = nil
    }

    /// One command through redis-cli; its raw output, trimmed.
    @discardableResult
    func cli(_ arguments: String...) throws -> String {
        try self.cli(arguments)
    }

    func cli(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // The password through the environment, not argv (REDISCLI_AUTH).
        if let password = self.password {
            process.environment = ProcessInfo.processInfo.environment.merging(["REDISCLI_AUTH": password]) { $1 }
        }
        process.arguments = ["redis-cli", "-p", String(self.port), "--raw"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw HarnessError("redis-cli \(arguments) exited \(process.terminationStatus)") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Every command Redis ran since the last CONFIG RESETSTAT, scripts'
    /// inner calls included (INFO commandstats counts those too), minus the
    /// test's own INFO/CONFIG calls.
    func commandsSinceReset() throws -> Int {
        var total = 0
        for line in try self.cli("INFO", "commandstats").split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            let name = line.dropFirst("cmdstat_".count).prefix { $0 != ":" }
            if name.hasPrefix("info") || name.hasPrefix("config") { continue }
            guard let calls = line.split(separator: ",").first?.split(separator: "=").last, let count = Int(calls) else { continue }
            total += count
        }
        return total
    }

    /// Σ u:<holder> of a quota key: the requests every instance spent.
    func spent(key: String) throws -> Int {
        let lines = try self.cli("HGETALL", key).split(whereSeparator: \.isNewline).map(String.init)
        var total = 0
        var index = 0
        while index + 1 < lines.count {
            if lines[index].hasPrefix("u:"), let value = Int(lines[index + 1]) { total += value }
            index += 2
        }
        return total
    }

    deinit {
        self.stop()
        if self.ownsDirectory { try? FileManager.default.removeItem(at: self.directory) }
    }
}
