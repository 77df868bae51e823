import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// Starts, watches and restarts the worker processes (SPEC §9): a worker
/// that exits is respawned into its slot after `RestartBackoff`; its links
/// on every loop fail their in-flight decisions with 503 at once; the other
/// workers are untouched. A worker is "up" once every loop has exchanged
/// Hello with it and it has acknowledged its config snapshot.
///
/// Thread-safe: links on every loop report to it, the reaper thread reports
/// exits, and it reaches each loop's links through `execute`.
final class WorkerSupervisor: @unchecked Sendable {
    enum SlotState: String, Sendable {
        case starting, up, down, stopped
    }

    struct SlotStatus: Sendable {
        let index: Int
        let pid: pid_t?
        let state: SlotState
        let restarts: Int
        /// The config version this worker acknowledged last (0: none yet).
        let configVersion: UInt64
        /// The worker's last quota sync report (nil: none yet, or no Redis).
        let quota: WorkerStatusMessage?
    }

    private struct Slot {
        var pid: pid_t? = nil
        var generation = 0
        var state = SlotState.down
        var restarts = 0
        var greetings = 0
        var startedAtMs: Int64 = 0
        var backoff = RestartBackoff()
        var respawnScheduled = false
        var ackedVersion: UInt64 = 0
        var quota: WorkerStatusMessage? = nil
    }

    private struct State {
        var slots: [Slot]
        /// The version in force and how to encode a slot's whole share of
        /// it (done on demand: at 100,000 clients that is seconds of JSON,
        /// paid only when a worker starts or falls behind).
        var version: UInt64 = 0
        var fullSnapshot: (@Sendable (Int) -> ConfigSnapshotMessage)? = nil
        var encoded: [Int: ConfigSnapshotMessage] = [:]
        /// OIDC key sets by source, sent ahead of every config snapshot so
        /// a (re)started worker has them before its first decision.
        var keySets: [String: KeySetMessage] = [:]
        var stopping = false
        var everyoneUp = false
    }

    let workerCount: Int
    private let binary: String
    private let loops: [NIOLoopBound<LoopContext>]
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    private let allUp: EventLoopPromise<Void>
    private let allStopped: EventLoopPromise<Void>
    private var reaper: ChildReaper!

    /// Completes when every worker is up for the first time.
    var ready: EventLoopFuture<Void> { self.allUp.futureResult }
    /// Completes when every worker has exited after `stop()`.
    var stopped: EventLoopFuture<Void> { self.allStopped.futureResult }

    /// A worker asked for fresh keys of an OIDC source.
    var onKeyRefresh: (@Sendable (String) -> Void)? = nil

    /// Extra worker arguments after `--index`/`--connections`, per slot.
    private let workerArguments: @Sendable (Int) -> [String]

    init(
        binary: String, workerCount: Int, loops: [NIOLoopBound<LoopContext>], logger: Logger,
        workerArguments: @escaping @Sendable (Int) -> [String] = { _ in [] }
    ) {
        self.workerArguments = workerArguments
        self.binary = binary
        self.workerCount = workerCount
        self.loops = loops
        self.logger = logger
        self.state = NIOLockedValueBox(State(slots: Array(repeating: Slot(), count: workerCount)))
        self.allUp = loops[0].eventLoop.makePromise()
        self.allStopped = loops[0].eventLoop.makePromise()
        self.reaper = ChildReaper { [weak self] pid, status in self?.childExited(pid: pid, status: status) }
    }

    // MARK: lifecycle

    func start(version: UInt64, fullSnapshot: @escaping @Sendable (Int) -> ConfigSnapshotMessage) {
        self.state.withLockedValue {
            $0.version = version
            $0.fullSnapshot = fullSnapshot
        }
        for slot in 0..<self.workerCount { self.spawn(slot: slot) }
    }

    /// Puts version `version` in force on every worker that is up; workers
    /// that are starting get it with their first snapshot. With `deltas`
    /// (a change that touched only clients) each worker gets just its part:
    /// one client's change reaches only its owner in full, the others get
    /// at most a few profile ids, or only the version number.
    func push(version: UInt64, fullSnapshot: @escaping @Sendable (Int) -> ConfigSnapshotMessage, deltas: [WorkerDelta]?) {
        let (targets, base) = self.state.withLockedValue { state -> ([Int], UInt64) in
            let base = state.version
            state.version = version
            state.fullSnapshot = fullSnapshot
            state.encoded = [:]
            return (state.slots.indices.filter { state.slots[$0].state == .up }, base)
        }
        for slot in targets {
            if let deltas, deltas.indices.contains(slot) {
                let delta = deltas[slot]
                // Encoding our own Codable value cannot fail; on the off
                // chance, the whole share goes instead.
                if delta.isEmpty {
                    self.send(slot: slot, ConfigSnapshotMessage(version: version, modelJSON: []), keys: false)
                } else if let json = try? delta.encoded() {
                    self.send(slot: slot, ConfigSnapshotMessage(version: version, modelJSON: [], deltaJSON: json, baseVersion: base), keys: false)
                } else {
                    self.sendSnapshot(slot: slot)
                }
            } else {
                self.sendSnapshot(slot: slot)
            }
        }
    }

    /// Sends one source's keys to every worker that is up and keeps them
    /// for workers that start later.
    func publish(keySet: KeySetMessage) {
        let targets = self.state.withLockedValue { state -> [(Int, Int)] in
            state.keySets[keySet.source] = keySet
            return state.slots.indices.filter { state.slots[$0].state == .up }.map { ($0, state.slots[$0].generation) }
        }
        let loop = self.loops[0]
        loop.eventLoop.execute {
            for (slot, generation) in targets {
                let link = loop.value.links[slot]
                guard link.generation == generation else { continue }
                link.sendControl(Frame(id: 0, body: .keySet(keySet)))
            }
        }
    }

    func forget(keySources: Set<String>) {
        self.state.withLockedValue { state in
            for source in keySources { state.keySets.removeValue(forKey: source) }
        }
    }

    func keyRefreshRequested(source: String) {
        self.onKeyRefresh?(source)
    }

    /// Stops every worker (SIGTERM; SIGKILL after 5 s) and never respawns.
    func stop() {
        let pids = self.state.withLockedValue { state -> [pid_t] in
            state.stopping = true
            return state.slots.compactMap(\.pid)
        }
        if pids.isEmpty { self.allStopped.succeed(()) }
        for pid in pids { kill(pid, SIGTERM) }
        self.loops[0].eventLoop.scheduleTask(in: .seconds(5)) { [self] in
            let stragglers = self.state.withLockedValue { $0.slots.compactMap(\.pid) }
            for pid in stragglers { kill(pid, SIGKILL) }
        }
    }

    func status() -> [SlotStatus] {
        self.state.withLockedValue { state in
            state.slots.enumerated().map { SlotStatus(
                    index: $0.offset, pid: $0.element.pid, state: $0.element.state, restarts: $0.element.restarts,
                    configVersion: $0.element.ackedVersion, quota: $0.element.quota) }
        }
    }

    var allWorkersUp: Bool {
        self.state.withLockedValue { $0.slots.allSatisfy { $0.state == .up } }
    }

    // MARK: spawning

    private func spawn(slot: Int) {
        let generation: Int? = self.state.withLockedValue { state in
            guard !state.stopping else { return nil }
            state.slots[slot].generation += 1
            state.slots[slot].state = .starting
            state.slots[slot].greetings = 0
            state.slots[slot].respawnScheduled = false
            state.slots[slot].quota = nil
            return state.slots[slot].generation
        }
        guard let generation else { return }
        let started: WorkerProcess.Started
        do {
            started = try WorkerProcess.spawn(
                binary: self.binary, slot: slot, connections: self.loops.count, extraArguments: self.workerArguments(slot))
        } catch {
            self.logger.error("cannot start worker", metadata: ["worker": "\(slot)", "error": "\(error)"])
            self.state.withLockedValue { $0.slots[slot].state = .down }
            self.scheduleRespawn(slot: slot, uptimeMs: 0)
            return
        }
        self.state.withLockedValue { state in
            state.slots[slot].pid = started.pid
            state.slots[slot].startedAtMs = Self.nowMs()
        }
        self.reaper.childStarted()
        self.logger.info("worker started", metadata: ["worker": "\(slot)", "worker_pid": "\(started.pid)", "generation": "\(generation)"])

        for (loopIndex, loop) in self.loops.enumerated() {
            let fd = started.routerSockets[loopIndex]
            loop.eventLoop.execute { [self] in
                let context = loop.value
                let link = context.links[slot]
                let boundLink = NIOLoopBound(link, eventLoop: loop.eventLoop)
                let bootstrap = ClientBootstrap(group: loop.eventLoop).channelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            WorkerLinkHandler(
                                link: boundLink.value, generation: generation, loopIndex: loopIndex, supervisor: self,
                                logger: self.logger))
                    }
                }
                bootstrap.withConnectedSocket(fd).assumeIsolated().whenComplete { result in
                    switch result {
                    case .success(let channel):
                        link.attach(channel, generation: generation)
                    case .failure(let error):
                        close(fd)
                        self.logger.error("cannot attach worker socket", metadata: ["worker": "\(slot)", "error": "\(error)"])
                        self.linkLost(slot: slot, generation: generation)
                    }
                }
            }
        }
    }

    private func scheduleRespawn(slot: Int, uptimeMs: Int64) {
        let delay: Int64? = self.state.withLockedValue { state in
            guard !state.stopping, !state.slots[slot].respawnScheduled else { return nil }
            state.slots[slot].respawnScheduled = true
            return state.slots[slot].backoff.delay(afterUptimeMs: uptimeMs)
        }
        guard let delay else { return }
        self.logger.info("respawning worker", metadata: ["worker": "\(slot)", "delay_ms": "\(delay)"])
        self.loops[0].eventLoop.scheduleTask(in: .milliseconds(delay)) { [self] in
            self.spawn(slot: slot)
        }
    }

    /// The slot's whole share of the version in force (with the key sets
    /// first, so a new worker can verify tokens from its first request).
    /// Encoding runs off the event loops; a snapshot that arrives after a
    /// newer one is ignored by the worker, so the order does not matter.
    private func sendSnapshot(slot: Int) {
        let (version, full, cached) = self.state.withLockedValue { ($0.version, $0.fullSnapshot, $0.encoded[slot]) }
        if let cached {
            self.send(slot: slot, cached, keys: true)
            return
        }
        guard let full else { return }
        DispatchQueue.global().async { [self] in
            let message = full(slot)
            self.state.withLockedValue { state in
                if state.version == version { state.encoded[slot] = message }
            }
            self.send(slot: slot, message, keys: true)
        }
    }

    private func send(slot: Int, _ message: ConfigSnapshotMessage, keys: Bool) {
        let (generation, keySets) = self.state.withLockedValue { state in (state.slots[slot].generation, Array(state.keySets.values)) }
        let loop = self.loops[0]
        loop.eventLoop.execute {
            let link = loop.value.links[slot]
            guard link.generation == generation else { return }
            if keys {
                for keySet in keySets { link.sendControl(Frame(id: 0, body: .keySet(keySet))) }
            }
            link.sendControl(Frame(id: 0, body: .config(message)))
        }
    }

    // MARK: reports from links and the reaper

    func linkGreeted(slot: Int, generation: Int, loopIndex: Int) {
        let complete = self.state.withLockedValue { state -> Bool in
            guard state.slots[slot].generation == generation else { return false }
            state.slots[slot].greetings += 1
            return state.slots[slot].greetings == self.loops.count
        }
        if complete { self.sendSnapshot(slot: slot) }
    }

    func statusReported(slot: Int, generation: Int, status: WorkerStatusMessage) {
        self.state.withLockedValue { state in
            guard state.slots[slot].generation == generation else { return }
            state.slots[slot].quota = status
        }
    }

    func configAcked(slot: Int, generation: Int, ack: ConfigAck) {
        if ack.error.hasPrefix("delta:") {
            // The worker was not at the delta's base (it was starting, or
            // missed a version): it gets the whole share instead.
            self.logger.info("worker needs a whole snapshot", metadata: ["worker": "\(slot)", "reason": "\(ack.error)"])
            self.sendSnapshot(slot: slot)
            return
        }
        guard ack.error.isEmpty else {
            // The router validated this config; a worker refusing it is a bug.
            // It keeps its previous model (if any) and stays as it was.
            self.logger.error("worker rejected config", metadata: ["worker": "\(slot)", "version": "\(ack.version)", "error": "\(ack.error)"])
            return
        }
        // A worker that was starting while a change was pushed acks an
        // older version than the one in force: catch it up.
        let behind = self.state.withLockedValue { state in
            state.slots[slot].generation == generation && ack.version < state.version
        }
        if behind { self.sendSnapshot(slot: slot) }
        let (becameUp, everyoneUp) = self.state.withLockedValue { state -> (Bool, Bool) in
            guard state.slots[slot].generation == generation else { return (false, false) }
            state.slots[slot].ackedVersion = max(state.slots[slot].ackedVersion, ack.version)
            guard state.slots[slot].state == .starting else { return (false, false) }
            state.slots[slot].state = .up
            let all = !state.everyoneUp && state.slots.allSatisfy { $0.state == .up }
            if all { state.everyoneUp = true }
            return (true, all)
        }
        guard becameUp else { return }
        for loop in self.loops {
            loop.eventLoop.execute { loop.value.links[slot].markReady(generation: generation) }
        }
        self.logger.info("worker up", metadata: ["worker": "\(slot)", "config_version": "\(ack.version)"])
        if everyoneUp { self.allUp.succeed(()) }
    }

    /// A connection to the worker closed: the worker is unusable (it exits
    /// when any of its connections closes). Fail its traffic everywhere now;
    /// the respawn waits for the reaper to see the process gone.
    func linkLost(slot: Int, generation: Int) {
        let pid: pid_t? = self.state.withLockedValue { state in
            guard state.slots[slot].generation == generation, state.slots[slot].state == .starting || state.slots[slot].state == .up else {
                return nil
            }
            state.slots[slot].state = .down
            return state.slots[slot].pid
        }
        guard let pid else { return }
        for loop in self.loops {
            loop.eventLoop.execute { loop.value.links[slot].detach(generation: generation) }
        }
        // Make sure it is really gone, so the slot cannot hold a half-alive process.
        kill(pid, SIGTERM)
    }

    private func childExited(pid: pid_t, status: CInt) {
        let found = self.state.withLockedValue { state -> (slot: Int, generation: Int, uptime: Int64, stopping: Bool, allGone: Bool)? in
            guard let slot = state.slots.firstIndex(where: { $0.pid == pid }) else { return nil }
            state.slots[slot].pid = nil
            state.slots[slot].state = state.stopping ? .stopped : .down
            if !state.stopping { state.slots[slot].restarts += 1 }
            let uptime = Self.nowMs() - state.slots[slot].startedAtMs
            let allGone = state.slots.allSatisfy { $0.pid == nil }
            return (slot, state.slots[slot].generation, uptime, state.stopping, allGone)
        }
        guard let found else { return }
        for loop in self.loops {
            loop.eventLoop.execute { loop.value.links[found.slot].detach(generation: found.generation) }
        }
        if found.stopping {
            self.logger.info("worker stopped", metadata: ["worker": "\(found.slot)", "worker_pid": "\(pid)"])
            if found.allGone { self.allStopped.succeed(()) }
            return
        }
        self.logger.error(
            "worker exited", metadata: ["worker": "\(found.slot)", "worker_pid": "\(pid)", "status": "\(WorkerProcess.describe(status: status))"])
        self.scheduleRespawn(slot: found.slot, uptimeMs: found.uptime)
    }

    private static func nowMs() -> Int64 {
        Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000)
    }
}
