import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOPosix
import Shared

/// The router process: loads the config, starts the event loops and the
/// workers, serves client traffic and the admin port, reloads the config,
/// and drains on SIGTERM/SIGINT (stop accepting, finish in-flight requests,
/// stop the workers).
final class Gateway: @unchecked Sendable {
    struct Options {
        var configPath: String
        var workers: Int?
        var workerBinary: String?
        var drainTimeoutSeconds: Int64 = 30
    }

    private let options: Options
    private let logger: Logger
    private let environment: [String: String]
    private let state: NIOLockedValueBox<(config: ValidatedConfig, version: UInt64, draining: Bool)>
    private var group: MultiThreadedEventLoopGroup!
    private var loops: LoopRegistry!
    private var supervisor: WorkerSupervisor!
    private var decisionLog: DecisionLog!
    private var watcher: ConfigWatcher?
    private let quiesceLock = NIOLock()

    private init(options: Options, config: ValidatedConfig, logger: Logger) {
        self.options = options
        self.logger = logger
        self.environment = ProcessInfo.processInfo.environment
        self.state = NIOLockedValueBox((config, 1, false))
    }

    /// Runs until drained; returns the process exit status.
    static func run(_ options: Options) -> Int32 {
        let logger = Logger(label: "portcullis")
        let config: ValidatedConfig
        do {
            config = try ConfigLoader.load(path: options.configPath, environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("portcullis: \(options.configPath): \(error)\n".utf8))
            return 2
        }
        let gateway = Gateway(options: options, config: config, logger: logger)
        do {
            return try gateway.serve()
        } catch {
            logger.critical("cannot start: \(error)")
            return 1
        }
    }

    private func serve() throws -> Int32 {
        let config = self.state.withLockedValue { $0.config }
        let server = config.model.server
        let workerCount = self.options.workers ?? server.workers ?? System.coreCount
        let threads = server.routerThreads ?? System.coreCount
        let binary = try self.options.workerBinary ?? Self.defaultWorkerBinary()

        self.decisionLog = try DecisionLog(target: .init(self.resolve(server.decisionLog)))
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let snapshot = RouterSnapshot(version: 1, config: config)
        var contexts: [NIOLoopBound<LoopContext>] = []
        for (index, loop) in self.group.makeIterator().enumerated() {
            let log = self.decisionLog!
            contexts.append(
                try loop.submit {
                    NIOLoopBound(
                        LoopContext(
                            index: index, eventLoop: loop, snapshot: snapshot, workerCount: workerCount, decisionLog: log,
                            limits: server.limits),
                        eventLoop: loop)
                }.wait())
        }
        self.loops = LoopRegistry(contexts: contexts)
        self.supervisor = WorkerSupervisor(binary: binary, workerCount: workerCount, loops: contexts, logger: self.logger)
        self.supervisor.start(snapshots: self.partition(config.model, version: 1, workerCount: workerCount))

        guard Self.wait(for: self.supervisor.ready, seconds: 30) else {
            self.supervisor.stop()
            throw GatewayStartError(message: "workers did not come up within 30 s (see the worker log lines above)")
        }

        let quiesce = ServerQuiescingHelper(group: self.group)
        let listener = try HTTPListener.bind(group: self.group, address: config.listen, loops: self.loops, quiesce: quiesce)
        let admin = try AdminServer.bind(group: self.group, address: config.adminListen) { [self] in self.adminStatus() }
        self.logger.info(
            "portcullis listening",
            metadata: [
                "listen": "\(listener.localAddress.map { "\($0)" } ?? config.listen.description)",
                "admin": "\(admin.localAddress.map { "\($0)" } ?? config.adminListen.description)",
                "workers": "\(workerCount)", "router_threads": "\(threads)",
            ])

        let watcher = ConfigWatcher(path: self.options.configPath) { [self] reason in self.reload(reason: reason) }
        watcher.start()
        self.watcher = watcher

        // Drain on SIGTERM/SIGINT.
        let done = DispatchSemaphore(value: 0)
        let signalQueue = DispatchQueue(label: "portcullis.signals")
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: signalQueue)
            source.setEventHandler { [self] in
                self.drain(quiesce: quiesce, admin: admin, signal: sig)
                done.signal()
            }
            source.resume()
            sources.append(source)
        }
        done.wait()
        for source in sources { source.cancel() }
        return 0
    }

    private func drain(quiesce: ServerQuiescingHelper, admin: any Channel, signal sig: Int32) {
        let first = self.state.withLockedValue { state -> Bool in
            defer { state.draining = true }
            return !state.draining
        }
        guard first else { return }
        self.logger.info("draining", metadata: ["signal": "\(sig)"])
        self.watcher?.stop()
        let drained = self.group.next().makePromise(of: Void.self)
        quiesce.initiateShutdown(promise: drained)
        if !Self.wait(for: drained.futureResult, seconds: Int(self.options.drainTimeoutSeconds)) {
            self.logger.warning("drain timeout passed; closing the remaining connections")
        }
        self.logger.info("connections drained; stopping workers")
        self.supervisor.stop()
        _ = Self.wait(for: self.supervisor.stopped, seconds: 6)
        try? admin.close().wait()
        self.decisionLog.close()
        self.logger.info("stopped")
        try? self.group.syncShutdownGracefully()
    }

    /// Blocks the calling (non-loop) thread until `future` completes or the
    /// time is up; true if it completed.
    private static func wait(for future: EventLoopFuture<Void>, seconds: Int) -> Bool {
        let done = DispatchSemaphore(value: 0)
        future.whenComplete { _ in done.signal() }
        return done.wait(timeout: .now() + .seconds(seconds)) == .success
    }

    // MARK: config

    private func reload(reason: String) {
        let current = self.state.withLockedValue { $0 }
        guard !current.draining else { return }
        let next: ValidatedConfig
        do {
            next = try ConfigLoader.load(path: self.options.configPath, environment: self.environment)
        } catch {
            self.logger.error("config rejected; keeping version \(current.version)", metadata: ["reason": "\(reason)", "error": "\(error)"])
            return
        }
        if next.model == current.config.model && next.credentials == current.config.credentials {
            return
        }
        for (field, old, new) in [
            ("server.listen", current.config.model.server.listen, next.model.server.listen),
            ("server.admin_listen", current.config.model.server.adminListen, next.model.server.adminListen),
            ("server.workers", "\(current.config.model.server.workers ?? 0)", "\(next.model.server.workers ?? 0)"),
            ("server.limits.max_header_bytes", "\(current.config.model.server.limits.maxHeaderBytes)", "\(next.model.server.limits.maxHeaderBytes)"),
        ] where old != new {
            self.logger.warning("\(field) changed; it takes effect on restart", metadata: ["from": "\(old)", "to": "\(new)"])
        }
        let version = current.version + 1
        self.state.withLockedValue { state in
            state.config = next
            state.version = version
        }
        let snapshot = RouterSnapshot(version: version, config: next)
        self.loops.forEach { $0.snapshot = snapshot }
        self.supervisor.push(snapshots: self.partition(next.model, version: version, workerCount: self.supervisor.workerCount))
        self.logger.info("config reloaded", metadata: ["version": "\(version)", "reason": "\(reason)"])
    }

    private func partition(_ model: GatewayConfig, version: UInt64, workerCount: Int) -> [ConfigSnapshotMessage] {
        let ring = ShardRing(count: workerCount)
        return WorkerSnapshot.partition(model, version: version, workerCount: workerCount, owner: ring.worker(for:)).map { snapshot in
            // Encoding our own Codable values cannot fail; an empty model is the safe fallback.
            ConfigSnapshotMessage(version: version, modelJSON: (try? snapshot.encoded()) ?? [])
        }
    }

    private func adminStatus() -> AdminStatus {
        let (version, draining) = self.state.withLockedValue { ($0.version, $0.draining) }
        return AdminStatus(configLoaded: true, loadedVersion: version, draining: draining, workers: self.supervisor.status())
    }

    /// Paths in the config are relative to the config file (SPEC §9).
    private func resolve(_ setting: String) -> String {
        guard setting != "off", setting != "stdout", setting != "-", !setting.hasPrefix("/") else { return setting }
        let directory = (self.options.configPath as NSString).deletingLastPathComponent
        return directory.isEmpty ? setting : directory + "/" + setting
    }

    /// `portcullis-worker` beside this executable, or `PORTCULLIS_WORKER_BIN`.
    static func defaultWorkerBinary() throws -> String {
        if let override = ProcessInfo.processInfo.environment["PORTCULLIS_WORKER_BIN"], !override.isEmpty { return override }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let candidate = ((executable as NSString).deletingLastPathComponent as NSString).appendingPathComponent("portcullis-worker")
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw GatewayStartError(message: "worker binary not found at \(candidate) (set PORTCULLIS_WORKER_BIN)")
        }
        return candidate
    }
}

struct GatewayStartError: Error, CustomStringConvertible {
    let message: String
    var description: String { self.message }
}
