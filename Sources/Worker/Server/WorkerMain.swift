import Dispatch
import Logging
import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// `portcullis-worker`: started by the router, never by hand. It inherits
/// one connected Unix socket per router event loop as descriptors 3, 4, …
/// and exits when any of them closes (the router is gone or dropped it for
/// a protocol error; either way the router's supervisor owns what happens next).
@main
struct WorkerMain {
    static let usage = """
        usage: portcullis-worker --index N --connections K [--holder ID] [--state-dir DIR]
          Started by `portcullis`; not meant to be run by hand. Talks to the
          router over K inherited Unix sockets (descriptors 3..3+K-1).
          --holder     this worker's name in shared quota keys (instance + slot)
          --state-dir  where the quota spend journal of this slot lives
          PORTCULLIS_WORKER_REDIS_URL (set by the router) turns on quota sharing.
        usage: portcullis-worker --bench-auth [--iterations N] [--only PREFIX]
          Prints the decision cost per auth type (bench/auth runs it);
          --only keeps the rows whose name starts with PREFIX (token, jwt, oidc).
        """

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--bench-auth" {
            exit(
                AuthBench.run(
                    iterations: value(of: "--iterations", in: arguments).flatMap(Int.init) ?? 20_000,
                    only: value(of: "--only", in: arguments) ?? ""))
        }
        guard let index = value(of: "--index", in: arguments).flatMap(Int.init),
            let connections = value(of: "--connections", in: arguments).flatMap(Int.init),
            index >= 0, (1...64).contains(connections)
        else {
            FileDescriptorOutput.standardError.write(usage + "\n")
            exit(arguments.contains("--help") ? 0 : 2)
        }

        LogSetup.bootstrap(process: "worker")
        var logger = Logger(label: "portcullis-worker")
        logger[metadataKey: "worker"] = "\(index)"
        // Before any thread starts, so that all of them inherit it.
        let scheduling = WorkerScheduling.apply(setting: getenv("PORTCULLIS_WORKER_SCHED").map { String(cString: $0) })

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let quotaLogger = logger
        let engine: NIOLoopBound<WorkerEngine>
        let room: NIOLoopBound<KeyWaitRoom>
        let syncer: NIOLoopBound<QuotaSyncer>?
        let quotaMode: String
        do {
            (engine, room, syncer, quotaMode) = try loop.submit {
                let quota = Self.quotaSetup(index: index, arguments: arguments, logger: quotaLogger)
                let engine = WorkerEngine(workerIndex: index, ledger: quota.ledger)
                let room = KeyWaitRoom(loop: loop)
                // Released waiters are decided again, now without waiting.
                room.onRelease = { waiters in
                    for waiter in waiters { waiter.answer(engine.decide(waiter.request)) }
                }
                var syncer: NIOLoopBound<QuotaSyncer>? = nil
                if let endpoint = quota.endpoint {
                    let sync = QuotaSyncer(
                        loop: loop, ledger: quota.ledger, endpoint: endpoint, holder: quota.holder, logger: quotaLogger)
                    sync.start()
                    syncer = NIOLoopBound(sync, eventLoop: loop)
                }
                return (NIOLoopBound(engine, eventLoop: loop), NIOLoopBound(room, eventLoop: loop), syncer, quota.describe)
            }.wait()
        } catch {
            logger.critical("cannot start: \(error)")
            exit(1)
        }

        var channels: [any Channel] = []
        for offset in 0..<connections {
            let bootstrap = ClientBootstrap(group: loop).channelInitializer { [logger] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        WorkerConnectionHandler(engine: engine.value, room: room.value, logger: logger))
                }
            }
            do {
                channels.append(try bootstrap.withConnectedSocket(CInt(3 + offset)).wait())
            } catch {
                logger.critical("cannot use inherited socket \(3 + offset): \(error)")
                exit(1)
            }
        }
        logger.info(
            "worker started",
            metadata: [
                "pid": "\(getpid())", "connections": "\(connections)", "quota": "\(quotaMode)", "scheduling": "\(scheduling)",
            ])

        if let syncer, let statusChannel = channels.first {
            try? loop.submit {
                syncer.value.onStatus = { status in
                    var buffer = statusChannel.allocator.buffer(capacity: 96)
                    FrameCodec.encode(Frame(id: 0, body: .status(status)), into: &buffer)
                    statusChannel.writeAndFlush(buffer, promise: nil)
                }
            }.wait()
        }

        // The first connection to close, or SIGTERM, ends the worker, after
        // a last quota flush (bounded: what misses it stays in the journal).
        let stop = loop.makePromise(of: String.self)
        for channel in channels { channel.closeFuture.whenComplete { _ in stop.succeed("router connection closed") } }
        signal(SIGTERM, SIG_IGN)
        let termSource = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
        // @Sendable: otherwise the closure inherits main()'s main-actor
        // isolation and the runtime's isolation check traps when dispatch
        // runs it on a global queue thread.
        termSource.setEventHandler { @Sendable in stop.succeed("SIGTERM") }
        termSource.resume()
        let why = (try? stop.futureResult.wait()) ?? "stopped"
        if let syncer {
            _ = try? loop.flatSubmit { syncer.value.flushForExit(timeoutMs: 1000) }.wait()
        }
        logger.info("\(why); exiting")
        exit(0)
    }

    struct QuotaSetup {
        let ledger: QuotaLedger
        let endpoint: RedisEndpoint?
        let holder: String
        var describe: String {
            self.endpoint.map { "shared via \($0) as \(self.holder)" } ?? "local to this instance"
        }
    }

    /// Redis from the router's environment variable, the journal from
    /// `--state-dir`. A bad URL was already refused by the router; here it
    /// only means running local rather than not at all.
    static func quotaSetup(index: Int, arguments: [String], logger: Logger) -> QuotaSetup {
        var endpoint: RedisEndpoint? = nil
        if let url = getenv("PORTCULLIS_WORKER_REDIS_URL").map({ String(cString: $0) }), !url.isEmpty {
            do {
                endpoint = try RedisEndpoint.parse(url)
            } catch {
                logger.error("quota sharing off: \(error)")
            }
        }
        var journal: SpendJournal? = nil
        if let directory = value(of: "--state-dir", in: arguments) {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            do {
                journal = try SpendJournal(path: "\(directory)/quota-worker-\(index).journal", nowUnixSeconds: Int64(now.tv_sec))
                if let journal, journal.restoredCount > 0 {
                    logger.info("quota journal restored", metadata: ["accounts": "\(journal.restoredCount)"])
                }
            } catch {
                logger.error("quota journal unavailable; unsynced spends will not survive a crash", metadata: ["error": "\(error)"])
            }
        }
        let holder = value(of: "--holder", in: arguments) ?? "w\(index)"
        return QuotaSetup(ledger: QuotaLedger(shared: endpoint != nil, journal: journal), endpoint: endpoint, holder: holder)
    }

    private static func value(of flag: String, in arguments: [String]) -> String? {
        guard let position = arguments.firstIndex(of: flag), position + 1 < arguments.count else { return nil }
        return arguments[position + 1]
    }
}

enum FileDescriptorOutput {
    case standardError

    func write(_ text: String) {
        var copy = text
        copy.withUTF8 { bytes in _ = Glibc.write(2, bytes.baseAddress, bytes.count) }
    }
}
