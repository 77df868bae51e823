import Foundation
import Shared

@testable import Router

#if canImport(Glibc)
import Glibc
#endif

/// A real MongoDB-wire server (`nx-27017`, installed by scripts/setup) on a
/// free loopback port, its data in a directory that survives a kill, so a
/// restart comes back with the same documents. Checked ready with a real
/// libmongoc `ping`, never a sleep.
final class MongoServer {
    let port: Int
    let directory: URL
    private var child: ChildProcess?
    private var starts = 0

    init(directory: URL) throws {
        self.port = Ports.free()
        self.directory = directory
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("mongo-data"), withIntermediateDirectories: true)
        try self.start()
    }

    var uri: String { "mongodb://127.0.0.1:\(self.port)/?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000" }

    static var binary: String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(directory)/nx-27017") {
            return "\(directory)/nx-27017"
        }
        return "/usr/local/bin/nx-27017"
    }

    func start() throws {
        self.starts += 1
        let data = self.directory.appendingPathComponent("mongo-data").path
        self.child = try ChildProcess(
            Self.binary,
            [
                "--data-dir", data, "--host", "127.0.0.1", "-p", String(self.port),
                "--pid-file", self.directory.appendingPathComponent("nx.pid").path,
                "--log-file", self.directory.appendingPathComponent("nx-\(self.starts).log").path,
            ],
            directory: self.directory, name: "nx-27017-\(self.starts)")
        let store = try MongoConfigStore(uri: self.uri)
        do {
            try waitUntil(20, "nx-27017 to answer ping") { (try? store.ping()) != nil }
        } catch {
            throw HarnessError("\(error)\nnx-27017 stderr:\n\(self.child?.stderr ?? "")")
        }
    }

    /// SIGKILL: MongoDB vanishing mid-conversation.
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

    func store() throws -> MongoConfigStore { try MongoConfigStore(uri: self.uri) }

    deinit { self.stop() }
}

/// Runs `portcullis <arguments>`; its exit status and output.
struct CLIRun {
    let status: Int32
    let stdout: String
    let stderr: String

    static func portcullis(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) throws -> CLIRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.path("portcullis"))
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let output = Pipe()
        let errors = Pipe()
        let input = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        // Read both pipes before waiting: a full pipe would block the child.
        let errorsRead = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var errData = Data()
        DispatchQueue.global().async {
            errData = errors.fileHandleForReading.readDataToEndOfFile()
            errorsRead.signal()
        }
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        errorsRead.wait()
        process.waitUntilExit()
        return CLIRun(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }
}
