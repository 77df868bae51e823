import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Real processes for integration tests: the gateway binaries built next to
/// this test bundle, on loopback ports, with their output kept in a temp
/// directory that a failing test prints.
enum Binaries {
    /// `swift build --build-tests` puts the executables beside the test
    /// bundle, whose path is this process's own. `PORTCULLIS_TEST_BIN_DIR`
    /// points the tests at other binaries instead, e.g. the release build
    /// of `scripts/release-build`, whose link-time optimisation the debug
    /// build does not have.
    static let directory: URL = {
        if let dir = ProcessInfo.processInfo.environment["PORTCULLIS_TEST_BIN_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }()

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds or `seconds` pass: a readiness check,
/// never a fixed sleep.
func waitUntil(_ seconds: Double, _ what: String, _ condition: () -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return }
        usleep(10_000)
    }
    if condition() { return }
    throw HarnessError("timed out after \(seconds)s waiting for \(what)")
}

enum Ports {
    /// A listening TCP socket on 127.0.0.1 at a kernel-chosen port, for the
    /// tests' own small servers.
    static func listen(backlog: Int32 = 64) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            close(fd)
            throw HarnessError("cannot listen on loopback: errno \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A port the kernel just handed out on 127.0.0.1 and nobody holds.
    static func free() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A child process with its output in files.
final class ChildProcess {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(_ executable: String, _ arguments: [String], directory: URL, name: String, environment: [String: String] = [:]) throws {
        self.stdoutPath = directory.appendingPathComponent("\(name).out").path
        self.stderrPath = directory.appendingPathComponent("\(name).err").path
        for path in [self.stdoutPath, self.stderrPath] where !FileManager.default.createFile(atPath: path, contents: nil) {
            throw HarnessError("cannot create \(path)")
        }
        self.process.executableURL = URL(fileURLWithPath: executable)
        self.process.arguments = arguments
        self.process.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        self.process.environment = env
        self.process.standardOutput = FileHandle(forWritingAtPath: self.stdoutPath)
        self.process.standardError = FileHandle(forWritingAtPath: self.stderrPath)
        try self.process.run()
    }

    var pid: Int32 { self.process.processIdentifier }
    var isRunning: Bool { self.process.isRunning }
    var stdout: String { (try? String(contentsOfFile: self.stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: self.stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ signal: Int32) { kill(self.pid, signal) }

    func stop() {
        guard self.process.isRunning else { return }
        kill(self.pid, SIGTERM)
        if (try? waitUntil(5, "exit") { !self.process.isRunning }) == nil {
            kill(self.pid, SIGKILL)
            self.process.waitUntilExit()
        }
    }
}

/// The demo upstream on a kernel-chosen port.
final class Upstream {
    let child: ChildProcess
    let port: Int

    init(directory: URL) throws {
        let child = try ChildProcess(
            Binaries.path("portcullis-demo-upstream"), ["--listen", "127.0.0.1:0"], directory: directory, name: "upstream")
        self.child = child
        var port: Int? = nil
        try waitUntil(10, "demo upstream to listen") {
            // "demo upstream listening on [IPv4]127.0.0.1/127.0.0.1:PORT"
            guard let line = child.stdout.split(separator: "\n").first(where: { $0.contains("listening on") }),
                let colon = line.lastIndex(of: ":"), let value = Int(line[line.index(after: colon)...])
            else { return false }
            port = value
            return true
        }
        self.port = port ?? 0
    }
}

/// A real gateway: router, its worker processes, the demo upstream.
final class Cluster {
    let directory: URL
    let upstream: Upstream
    let port: Int
    let adminPort: Int
    /// A loopback port with nothing listening (upstream-down tests).
    let deadPort: Int
    let configPath: String
    let decisionLogPath: String
    private(set) var router: ChildProcess!

    /// `yaml` gets this cluster so it can name its ports.
    init(workers: Int = 2, environment: [String: String] = [:], yaml: (Cluster) -> String) throws {
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("portcullis-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.upstream = try Upstream(directory: self.directory)
        self.port = Ports.free()
        self.adminPort = Ports.free()
        self.deadPort = Ports.free()
        self.configPath = self.directory.appendingPathComponent("portcullis.yaml").path
        self.decisionLogPath = self.directory.appendingPathComponent("decisions.log").path
        try yaml(self).write(toFile: self.configPath, atomically: true, encoding: .utf8)
        self.router = try ChildProcess(
            Binaries.path("portcullis"), ["serve", "--config", self.configPath, "--workers", String(workers)],
            directory: self.directory, name: "router", environment: environment)
        do {
            try waitUntil(30, "gateway /readyz") { self.readiness()?["ready"] as? Bool == true }
        } catch {
            self.stop()
            throw HarnessError("\(error)\nrouter stderr:\n\(self.router.stderr)\nrouter stdout:\n\(self.router.stdout)")
        }
    }

    /// The server block every test config starts with.
    func serverBlock(extra: String = "") -> String {
        """
        server:
          listen: "127.0.0.1:\(self.port)"
          admin_listen: "127.0.0.1:\(self.adminPort)"
          decision_log: "\(self.decisionLogPath)"
        \(extra)
        """
    }

    var upstreamURL: String { "http://127.0.0.1:\(self.upstream.port)" }

    func readiness() -> [String: Any]? {
        guard let response = try? HTTPClient.request(port: self.adminPort, "GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        else { return nil }
        return response.json
    }

    func workerPIDs() -> [Int32] {
        let workers = self.readiness()?["workers"] as? [[String: Any]] ?? []
        return workers.compactMap { ($0["pid"] as? Int).map(Int32.init) }
    }

    /// A request on a fresh connection.
    func send(
        _ method: String = "GET", _ path: String, headers: [(String, String)] = [], body: String? = nil
    ) throws -> HTTPResponse {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: gateway.test\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "Connection: close\r\n\r\n"
        if let body { text += body }
        return try HTTPClient.request(port: self.port, text, head: method == "HEAD")
    }

    func stop() {
        self.router?.stop()
        self.upstream.child.stop()
    }

    var logs: String {
        "router stderr:\n\(self.router?.stderr ?? "")\nupstream:\n\(self.upstream.child.stderr)"
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }
}
