import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Shared

/// The Redis side of quota sharing: a connection used only from one
/// thread-pool thread, one call at a time (the syncer never has two in
/// flight), so it needs no lock.
private final class RedisLink: @unchecked Sendable {
    let endpoint: RedisEndpoint
    let holder: String
    let timeoutMs: Int
    private var connection: RedisConnection? = nil
    private var sha: String? = nil

    init(endpoint: RedisEndpoint, holder: String, timeoutMs: Int) {
        self.endpoint = endpoint
        self.holder = holder
        self.timeoutMs = timeoutMs
    }

    /// Runs one batch: blocking, on the pool thread.
    func run(_ batch: QuotaSyncBatch) throws(RedisError) -> (replies: [QuotaSyncReply?], reconnected: Bool) {
        var reconnected = false
        if self.connection?.isOpen != true {
            self.connection = try RedisConnection.connect(self.endpoint, timeoutMs: self.timeoutMs)
            self.sha = nil
            reconnected = true
        }
        guard let connection = self.connection else { throw RedisError(message: "redis connection is closed") }
        do throws(RedisError) {
            if batch.entries.isEmpty {
                let pong = try connection.command(["PING"])
                if case .error(let message) = pong { throw RedisError(message: "PING: \(message)") }
                return ([], reconnected)
            }
            for attempt in 0..<2 {
                let sha = try self.scriptSHA(connection)
                let reply = try connection.command(QuotaScript.arguments(batch, holder: self.holder, sha: sha))
                // SCRIPT FLUSH or a failover to a replica without the script.
                if case .error(let message) = reply, message.hasPrefix("NOSCRIPT"), attempt == 0 {
                    self.sha = nil
                    continue
                }
                return (try QuotaScript.replies(reply, for: batch), reconnected)
            }
            throw RedisError(message: "quota script could not be loaded")
        } catch {
            connection.close()
            throw error
        }
    }

    private func scriptSHA(_ connection: RedisConnection) throws(RedisError) -> String {
        if let sha = self.sha { return sha }
        let reply = try connection.command(["SCRIPT", "LOAD", QuotaScript.source])
        guard case .bulk = reply, let sha = reply.text else {
            throw RedisError(message: "SCRIPT LOAD failed: \(reply.text ?? "unexpected reply")")
        }
        self.sha = sha
        return sha
    }

    func close() { self.connection?.close() }
}

/// Drives the ledger's sync from the worker's event loop: a timer asks the
/// ledger for a batch, a one-thread pool makes the blocking hiredis call,
/// and the answer comes back to the loop. Decisions never wait for it.
final class QuotaSyncer {
    private let loop: any EventLoop
    private let ledger: QuotaLedger
    private let link: RedisLink
    private let pool: NIOThreadPool
    private let clock: any DecisionClock
    private let logger: Logger
    private var inFlight = false
    private var ticker: RepeatedTask? = nil
    private var lastHealth: QuotaHealth
    private var lastReported: WorkerStatusMessage? = nil
    private var lastReportNanos: UInt64 = 0
    /// Called on the loop with the status when it changed (at most every 500 ms).
    var onStatus: ((WorkerStatusMessage) -> Void)? = nil

    init(
        loop: any EventLoop, ledger: QuotaLedger, endpoint: RedisEndpoint, holder: String,
        clock: any DecisionClock = SystemDecisionClock(), logger: Logger
    ) {
        self.loop = loop
        self.ledger = ledger
        self.link = RedisLink(endpoint: endpoint, holder: holder, timeoutMs: ledger.settings.redisTimeoutMs)
        self.pool = NIOThreadPool(numberOfThreads: 1)
        self.clock = clock
        self.logger = logger
        self.lastHealth = ledger.health
        self.pool.start()
    }

    /// Starts the timer; call on the loop.
    func start() {
        self.loop.assertInEventLoop()
        let bound = NIOLoopBound(self, eventLoop: self.loop)
        self.ticker = self.loop.scheduleRepeatedTask(initialDelay: .milliseconds(5), delay: .milliseconds(10)) { _ in
            bound.value.tick()
        }
    }

    private func tick() {
        let time = self.clock.now()
        self.report(now: time.monotonicNanos)
        guard !self.inFlight, let batch = self.ledger.nextBatch(now: time.monotonicNanos, unixSeconds: time.unixSeconds)
        else { return }
        self.send(batch)
    }

    private func send(_ batch: QuotaSyncBatch) {
        self.inFlight = true
        let link = self.link
        let bound = NIOLoopBound(self, eventLoop: self.loop)
        self.pool.runIfActive(eventLoop: self.loop) { () throws -> SyncOutcome in
            do {
                let (replies, reconnected) = try link.run(batch)
                return SyncOutcome(replies: replies, reconnected: reconnected)
            } catch {
                return SyncOutcome(error: "\(error)")
            }
        }.whenComplete { result in
            let syncer = bound.value
            syncer.inFlight = false
            let time = syncer.clock.now()
            switch result {
            case .success(let outcome) where outcome.error == nil:
                syncer.ledger.completed(
                    batch, replies: outcome.replies, reconnected: outcome.reconnected, now: time.monotonicNanos,
                    unixMs: time.unixSeconds * 1000)
            case .success(let outcome):
                syncer.ledger.failed(batch, error: outcome.error ?? "", now: time.monotonicNanos)
            case .failure(let error):
                syncer.ledger.failed(batch, error: "\(error)", now: time.monotonicNanos)
            }
            syncer.noteHealth()
        }
    }

    private func noteHealth() {
        let health = self.ledger.health
        guard health != self.lastHealth else { return }
        switch health {
        case .down:
            self.logger.error(
                "redis unavailable: quotas continue from local counts per policy on_redis_failure; spends are kept and retried",
                metadata: ["redis": "\(self.link.endpoint)", "error": "\(self.ledger.lastError)"])
        case .up:
            self.logger.info(
                self.lastHealth == .down ? "redis back: reconciling quota counts" : "redis connected",
                metadata: ["redis": "\(self.link.endpoint)"])
        default:
            break
        }
        self.lastHealth = health
    }

    private func report(now: UInt64) {
        guard let onStatus = self.onStatus, now &- self.lastReportNanos >= 500_000_000 else { return }
        let status = self.ledger.status()
        guard status != self.lastReported else { return }
        self.lastReported = status
        self.lastReportNanos = now
        onStatus(status)
    }

    /// Writes every unsynced spend before the worker exits, for at most
    /// `timeoutMs`; whatever does not make it stays in the journal.
    func flushForExit(timeoutMs: Int64) -> EventLoopFuture<Void> {
        self.loop.assertInEventLoop()
        self.ticker?.cancel()
        self.ticker = nil
        let promise = self.loop.makePromise(of: Void.self)
        let deadline = NIODeadline.now() + .milliseconds(timeoutMs)
        let bound = NIOLoopBound(self, eventLoop: self.loop)
        let attempted = NIOLoopBoundBox(false, eventLoop: self.loop)
        self.loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(2)) { task in
            let syncer = bound.value
            guard !syncer.inFlight else { return }
            // One try even when Redis looked down: it may be back.
            if NIODeadline.now() >= deadline || (attempted.value && syncer.ledger.health == .down) {
                task.cancel(promise: nil)
                promise.succeed(())
                return
            }
            syncer.ledger.stopping = true
            syncer.ledger.flushAllNow()
            let time = syncer.clock.now()
            guard let batch = syncer.ledger.nextBatch(now: time.monotonicNanos, unixSeconds: time.unixSeconds) else {
                task.cancel(promise: nil)
                promise.succeed(())
                return
            }
            attempted.value = true
            syncer.send(batch)
        }
        return promise.futureResult.always { _ in
            bound.value.link.close()
            bound.value.pool.shutdownGracefully { _ in }
        }
    }
}

private struct SyncOutcome: Sendable {
    var replies: [QuotaSyncReply?] = []
    var reconnected = false
    var error: String? = nil
}
