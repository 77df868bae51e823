import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL
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
    private let state: NIOLockedValueBox<(config: ValidatedConfig, version: UInt64, draining: Bool, loaded: Bool)>
    private var group: MultiThreadedEventLoopGroup!
    private var loops: LoopRegistry!
    private var supervisor: WorkerSupervisor!
    private var keySets: KeySetService!
    private var decisionLog: DecisionLog!
    private var metrics: GatewayMetrics!
    private var watcher: ConfigWatcher?
    /// Set when the model lives in MongoDB (`MONGODB_URI`/`server.mongodb_uri`).
    private var mongo: MongoConfigSource?
    private(set) var management: ManagementAPI!
    private var apiPool: NIOThreadPool?
    /// One quiescing helper per listener: a helper hands out a single
    /// collector, so one shared by the plain and the TLS listener left the
    /// TLS one accepting, its connections unquiesced, during a drain.
    /// `drain` takes them out and lets them go while the event loops still
    /// run: a helper's deinit completes a promise on one of them.
    private let quiescers = NIOLockedValueBox<[ServerQuiescingHelper]>([])
    private let applyLock = NIOLock()
    /// The clients in force by id (under `applyLock`), to find what a change touched.
    private var clientIndex: [String: ClientConfig] = [:]
    /// Where quotas are shared, and the URL text as configured (the workers
    /// parse it again; only the router reports errors about it).
    private let redis: (endpoint: RedisEndpoint, url: String)?
    /// Per-run directory for the workers' quota spend journals.
    private var stateDirectory: String? = nil

    private init(options: Options, config: ValidatedConfig, redis: (endpoint: RedisEndpoint, url: String)?, logger: Logger) {
        self.options = options
        self.redis = redis
        self.logger = logger
        self.environment = ProcessInfo.processInfo.environment
        self.state = NIOLockedValueBox((config, 1, false, true))
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
        let redis: (endpoint: RedisEndpoint, url: String)?
        do {
            redis = try Self.redisEndpoint(config.model, environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("portcullis: \(error)\n".utf8))
            return 2
        }
        let mongoURI: String?
        do {
            mongoURI = try Self.setting(
                "MONGODB_URI", "server.mongodb_uri", config.model.server.mongodbURI, environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("portcullis: \(error)\n".utf8))
            return 2
        }
        let gateway = Gateway(options: options, config: config, redis: redis, logger: logger)
        if let mongoURI {
            do {
                try gateway.useMongo(uri: mongoURI)
            } catch {
                FileHandle.standardError.write(Data("portcullis: MONGODB_URI: \(error)\n".utf8))
                return 2
            }
        }
        defer { gateway.removeStateDirectory() }
        do {
            return try gateway.serve()
        } catch {
            logger.critical("cannot start: \(error)")
            return 1
        }
    }

    /// The model comes from MongoDB: from it now, else from the snapshot
    /// on disk, else none yet (unready until MongoDB answers).
    private func useMongo(uri: String) throws {
        let server = self.state.withLockedValue { $0.config.model.server }
        let store = try MongoConfigStore(uri: uri)
        let snapshotPath = self.resolve(server.snapshotPath ?? "portcullis-snapshot.json")
        let source = MongoConfigSource(
            store: store, server: server, environment: self.environment, snapshotPath: snapshotPath, logger: self.logger
        ) { [weak self] config, reason in
            self?.apply(config, reason: reason)
        }
        if !self.state.withLockedValue({ $0.config.model.clients.isEmpty && $0.config.model.policies.isEmpty && $0.config.model.collections.isEmpty }) {
            self.logger.warning("MongoDB holds the model; the clients, policies, collections and credentials of the file are not used")
        }
        self.logger.info("config store", metadata: ["mongodb": "\(store.displayURI)", "snapshot": "\(snapshotPath)"])
        if let initial = source.initialConfig() {
            self.state.withLockedValue { $0.config = initial }
        } else {
            // Serve nothing until MongoDB answers: every request is refused
            // by the empty model and /readyz says 503.
            let empty = GatewayConfig(server: server)
            if let validated = try? ConfigLoader.validate(empty, environment: self.environment) {
                self.state.withLockedValue {
                    $0.config = validated
                    $0.loaded = false
                }
            }
        }
        self.mongo = source
    }

    /// An environment variable wins over the config field, which may itself
    /// name a `$VARIABLE`; nil when neither is set.
    static func setting(_ variable: String, _ field: String, _ configured: String?, environment: [String: String]) throws -> String? {
        if let value = environment[variable], !value.isEmpty { return value }
        guard let configured, !configured.isEmpty else { return nil }
        guard configured.hasPrefix("$") else { return configured }
        let name = String(configured.dropFirst())
        guard let value = environment[name], !value.isEmpty else {
            throw GatewayStartError(message: "\(field): environment variable \(name) is not set")
        }
        return value
    }

    /// `REDIS_URL` wins over `server.redis_url` (which may name a
    /// `$VARIABLE`); neither means quotas are local to this instance.
    static func redisEndpoint(
        _ model: GatewayConfig, environment: [String: String]
    ) throws -> (endpoint: RedisEndpoint, url: String)? {
        let field = (environment["REDIS_URL"] ?? "").isEmpty ? "server.redis_url" : "REDIS_URL"
        let text = try Self.setting("REDIS_URL", "server.redis_url", model.server.redisURL, environment: environment)
        guard let text else { return nil }
        do {
            return (try RedisEndpoint.parse(text), text)
        } catch {
            throw GatewayStartError(message: "\(field): \(error.message)")
        }
    }

    /// This instance's name in shared quota keys: `PORTCULLIS_INSTANCE_ID`
    /// (in Kubernetes, the pod name) or the host name plus a random suffix,
    /// so two instances on one host never share a holder.
    private func instanceID() -> String {
        if let id = self.environment["PORTCULLIS_INSTANCE_ID"], !id.isEmpty { return id }
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        let suffix = Hex.encode((try? Crypto.randomBytes(3)) ?? [0, 0, 0])
        return "\(host)-\(suffix)"
    }

    private func makeStateDirectory() -> String? {
        let base = self.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/portcullis-state-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) }
        }
        guard let made else {
            self.logger.warning("no state directory for quota journals; unsynced quota spends will not survive a worker crash")
            return nil
        }
        return made
    }

    private func removeStateDirectory() {
        guard let directory = self.stateDirectory else { return }
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func serve() throws -> Int32 {
        let config = self.state.withLockedValue { $0.config }
        let server = config.model.server
        let workerCount = self.options.workers ?? server.workers ?? System.coreCount
        let threads = server.routerThreads ?? System.coreCount
        let binary = try self.options.workerBinary ?? Self.defaultWorkerBinary()
        // Certificates are loaded before any worker starts: a bad path or a
        // key that does not match stops start-up with the field named.
        let configDirectory = (self.options.configPath as NSString).deletingLastPathComponent
        let tlsContext = try server.tls.map { tls throws(TLSListener.SetupError) in try TLSListener.context(tls, relativeTo: configDirectory) }

        self.decisionLog = try DecisionLog(target: .init(self.resolve(server.decisionLog)))
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let metrics = GatewayMetrics(workerCount: workerCount)
        self.metrics = metrics
        let snapshot = RouterSnapshot(version: 1, config: config)
        var contexts: [NIOLoopBound<LoopContext>] = []
        for (index, loop) in self.group.makeIterator().enumerated() {
            let log = self.decisionLog!
            contexts.append(
                try loop.submit {
                    NIOLoopBound(
                        LoopContext(
                            index: index, eventLoop: loop, snapshot: snapshot, workerCount: workerCount, decisionLog: log,
                            limits: server.limits, metrics: metrics),
                        eventLoop: loop)
                }.wait())
        }
        self.loops = LoopRegistry(contexts: contexts)
        if let redis = self.redis {
            // Workers read it from the environment: not from argv, which
            // every user on the host can see, since it may hold a password.
            setenv("PORTCULLIS_WORKER_REDIS_URL", redis.url, 1)
        } else {
            unsetenv("PORTCULLIS_WORKER_REDIS_URL")
        }
        let instance = self.instanceID()
        self.stateDirectory = self.makeStateDirectory()
        let stateDirectory = self.stateDirectory
        self.supervisor = WorkerSupervisor(
            binary: binary, workerCount: workerCount, loops: contexts, logger: self.logger
        ) { slot in
            var arguments = ["--holder", "\(instance)/w\(slot)"]
            if let stateDirectory { arguments += ["--state-dir", stateDirectory] }
            return arguments
        }
        self.logger.info(
            "quotas", metadata: ["mode": "\(self.redis.map { "shared via \($0.endpoint)" } ?? "local to this instance")", "instance": "\(instance)"])
        let supervisor = self.supervisor!
        // The management API's bearer tokens are verified here in the
        // router, with keys from the same fetcher as the workers' oidc keys.
        let refresh = NIOLockedValueBox<(@Sendable (String) -> Void)?>(nil)
        let adminAuth = config.model.server.admin.map { admin in
            AdminAuthenticator(config: admin) { source in refresh.withLockedValue { $0 }?(source) }
        }
        self.keySets = try KeySetService(
            loop: self.group.next(), logger: self.logger, metrics: metrics,
            publish: { message in
                supervisor.publish(keySet: message)
                adminAuth?.accept(message)
            },
            forget: { supervisor.forget(keySources: $0) })
        let keySets = self.keySets!
        refresh.withLockedValue { $0 = { keySets.refreshRequested($0) } }
        supervisor.onKeyRefresh = { keySets.refreshRequested($0) }
        self.keySets.update(config.model)
        self.keySets.start()
        self.clientIndex = Self.index(config.model)
        self.logUnavailableCredentials(self.state.withLockedValue { $0.config }, previous: nil)
        if self.state.withLockedValue({ $0.loaded }) { metrics.configApplied(version: 1, unixMs: WallClock.nowMillis()) }
        self.supervisor.start(version: 1, fullSnapshot: Self.fullSnapshot(config.model, version: 1, workerCount: workerCount))

        guard Self.wait(for: self.supervisor.ready, seconds: 30) else {
            self.supervisor.stop()
            throw GatewayStartError(message: "workers did not come up within 30 s (see the worker log lines above)")
        }

        let listener = try self.bindListener(config.listen, tls: nil)
        var tlsListener: (any Channel)? = nil
        if let tls = server.tls, let address = HostPort(tls.listen), let tlsContext {
            tlsListener = try self.bindListener(address, tls: tlsContext)
        }
        let apiPool = NIOThreadPool(numberOfThreads: 2)
        apiPool.start()
        self.apiPool = apiPool
        self.management = self.makeManagementAPI(authenticator: adminAuth)
        let settings = AdminServer.Settings(
            api: self.management, pool: apiPool, metrics: metrics,
            corsOrigins: (self.environment["CORS_ALLOW_ORIGINS"] ?? "").split(separator: ",").map { String($0.trimmingASCIIWhitespace()) }.filter { !$0.isEmpty })
        let admin = try AdminServer.bind(group: self.group, address: config.adminListen, settings: settings) { [self] in self.adminStatus() }
        self.logger.info(
            "portcullis listening",
            metadata: [
                "listen": "\(listener.localAddress.map { "\($0)" } ?? config.listen.description)",
                "admin": "\(admin.localAddress.map { "\($0)" } ?? config.adminListen.description)",
                "tls": "\(tlsListener?.localAddress.map { "\($0)" } ?? "off")",
                "workers": "\(workerCount)", "router_threads": "\(threads)",
            ])

        if let mongo = self.mongo {
            mongo.start()
        } else {
            let watcher = ConfigWatcher(path: self.options.configPath) { [self] reason in self.reload(reason: reason) }
            watcher.start()
            self.watcher = watcher
        }

        // Drain on SIGTERM/SIGINT.
        let done = DispatchSemaphore(value: 0)
        let signalQueue = DispatchQueue(label: "portcullis.signals")
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: signalQueue)
            source.setEventHandler { [self] in
                self.drain(admin: admin, signal: sig)
                done.signal()
            }
            source.resume()
            sources.append(source)
        }
        done.wait()
        for source in sources { source.cancel() }
        return 0
    }

    /// A client listener with its own quiescing helper (see `quiescers`).
    private func bindListener(_ address: HostPort, tls: NIOSSLContext?) throws -> any Channel {
        let quiesce = ServerQuiescingHelper(group: self.group)
        self.quiescers.withLockedValue { $0.append(quiesce) }
        return try HTTPListener.bind(group: self.group, address: address, loops: self.loops, quiesce: quiesce, tls: tls)
    }

    /// Closes every client listener and waits, up to the drain timeout, for
    /// the connections they accepted to finish. The helpers are released
    /// when this returns, before the event loops stop.
    private func quiesceListeners() -> Bool {
        let helpers = self.quiescers.withLockedValue { helpers in
            defer { helpers = [] }
            return helpers
        }
        let loop = self.group.next()
        let drained = helpers.map { helper in
            let promise = loop.makePromise(of: Void.self)
            helper.initiateShutdown(promise: promise)
            return promise.futureResult
        }
        return Self.wait(for: EventLoopFuture.andAllComplete(drained, on: loop), seconds: Int(self.options.drainTimeoutSeconds))
    }

    private func drain(admin: any Channel, signal sig: Int32) {
        let first = self.state.withLockedValue { state -> Bool in
            defer { state.draining = true }
            return !state.draining
        }
        guard first else { return }
        self.logger.info("draining", metadata: ["signal": "\(sig)"])
        self.watcher?.stop()
        self.mongo?.stop()
        if !self.quiesceListeners() {
            self.logger.warning("drain timeout passed; closing the remaining connections")
        }
        self.logger.info("connections drained; stopping workers")
        self.supervisor.stop()
        _ = Self.wait(for: self.supervisor.stopped, seconds: 6)
        self.keySets.stop()
        try? self.apiPool?.syncShutdownGracefully()
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
        self.apply(next, reason: reason)
    }

    /// Puts `next` in force on every event loop and worker (only workers
    /// whose share of the model changed receive a snapshot).
    private func apply(_ next: ValidatedConfig, reason: String) {
        // One change at a time: each worker delta is made against the
        // version pushed just before it.
        self.applyLock.withLock { self.applyLocked(next, reason: reason) }
    }

    private func applyLocked(_ next: ValidatedConfig, reason: String) {
        let (current, version) = self.state.withLockedValue { state -> ((config: ValidatedConfig, version: UInt64, draining: Bool, loaded: Bool), UInt64?) in
            let current = state
            guard !state.draining else { return (current, nil) }
            guard !state.loaded || next.model != state.config.model || next.credentials != state.config.credentials else { return (current, nil) }
            state.config = next
            state.version += 1
            state.loaded = true
            return (current, state.version)
        }
        guard let version else { return }
        for (field, old, new) in [
            ("server.listen", current.config.model.server.listen, next.model.server.listen),
            ("server.admin_listen", current.config.model.server.adminListen, next.model.server.adminListen),
            ("server.tls", "\(String(describing: current.config.model.server.tls))", "\(String(describing: next.model.server.tls))"),
            ("server.workers", "\(current.config.model.server.workers ?? 0)", "\(next.model.server.workers ?? 0)"),
            ("server.limits.max_header_bytes", "\(current.config.model.server.limits.maxHeaderBytes)", "\(next.model.server.limits.maxHeaderBytes)"),
        ] where old != new {
            self.logger.warning("\(field) changed; it takes effect on restart", metadata: ["from": "\(old)", "to": "\(new)"])
        }
        self.logUnavailableCredentials(next, previous: current.loaded ? current.config : nil)
        let snapshot = RouterSnapshot(version: version, config: next)
        self.loops.forEach { $0.snapshot = snapshot }
        self.keySets.update(next.model)
        let workerCount = self.supervisor.workerCount
        let ring = ShardRing(count: workerCount)
        let deltas = current.loaded
            ? WorkerDelta.diff(
                from: current.config.model, oldClients: self.clientIndex, to: next.model, workerCount: workerCount, owner: ring.worker(for:))
            : nil
        self.clientIndex = Self.index(next.model)
        self.supervisor.push(version: version, fullSnapshot: Self.fullSnapshot(next.model, version: version, workerCount: workerCount), deltas: deltas)
        self.metrics.configApplied(version: version, unixMs: WallClock.nowMillis())
        self.logger.info(
            "config reloaded",
            metadata: [
                "version": "\(version)", "reason": "\(reason)",
                "clients_changed": "\(deltas.map { String($0.reduce(0) { $0 + $1.upserts.count + $1.removed.count }) } ?? "all")",
                "policies_changed": "\(deltas.map { String($0.first?.policies != nil) } ?? "all")",
                "routes_changed": "\(deltas.map { String($0.first?.collections != nil) } ?? "all")",
            ])
    }

    private func logUnavailableCredentials(_ config: ValidatedConfig, previous: ValidatedConfig?) {
        for (id, credential) in config.credentials.sorted(by: { $0.key < $1.key }) {
            if let why = credential.unavailable, previous?.credentials[id]?.unavailable != why {
                self.logger.error(
                    "backend credential unavailable: requests to its collections answer 500 credential_unavailable",
                    metadata: ["credential": "\(id)", "reason": "\(why)"])
            }
        }
    }

    private static func index(_ model: GatewayConfig) -> [String: ClientConfig] {
        var index: [String: ClientConfig] = [:]
        index.reserveCapacity(model.clients.count)
        for client in model.clients { index[client.id] = client }
        return index
    }

    /// Encodes one slot's whole share of `model`, when the supervisor asks.
    private static func fullSnapshot(_ model: GatewayConfig, version: UInt64, workerCount: Int) -> @Sendable (Int) -> ConfigSnapshotMessage {
        { slot in
            let ring = ShardRing(count: workerCount)
            let shares = WorkerSnapshot.partition(model, version: version, workerCount: workerCount, owner: ring.worker(for:))
            // Encoding our own Codable values cannot fail; an empty model is the safe fallback.
            return ConfigSnapshotMessage(version: version, modelJSON: (try? shares[slot].encoded()) ?? [])
        }
    }

    private func adminStatus() -> AdminStatus {
        let (version, draining, loaded) = self.state.withLockedValue { ($0.version, $0.draining, $0.loaded) }
        return AdminStatus(
            configLoaded: loaded, loadedVersion: version, draining: draining, workers: self.supervisor.status(),
            redis: self.redis?.endpoint.description, oidc: self.keySets.status(), store: self.mongo?.status())
    }

    /// The management API writes where the model lives: MongoDB, or the
    /// YAML file (rewritten whole, then reloaded) with a JSONL audit log
    /// beside it.
    private func makeManagementAPI(authenticator: AdminAuthenticator?) -> ManagementAPI {
        let backend: ManagementAPI.Backend
        if let mongo = self.mongo {
            backend = .mongo(mongo.store, mongo)
        } else {
            let auditPath = self.resolve("portcullis-audit.jsonl")
            backend = .file(path: self.options.configPath, audit: FileAuditLog(path: auditPath)) { [weak self] in
                self?.reload(reason: "management API")
            }
        }
        return ManagementAPI(backend: backend, authenticator: authenticator, environment: self.environment, logger: self.logger) {
            [weak self] in
            self?.state.withLockedValue { $0.config.model } ?? GatewayConfig(server: ServerConfig())
        }
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
