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
        usage: portcullis-worker --index N --connections K
          Started by `portcullis`; not meant to be run by hand. Talks to the
          router over K inherited Unix sockets (descriptors 3..3+K-1).
        """

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let index = value(of: "--index", in: arguments).flatMap(Int.init),
            let connections = value(of: "--connections", in: arguments).flatMap(Int.init),
            index >= 0, (1...64).contains(connections)
        else {
            FileDescriptorOutput.standardError.write(usage + "\n")
            exit(arguments.contains("--help") ? 0 : 2)
        }

        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        var logger = Logger(label: "portcullis-worker")
        logger[metadataKey: "worker"] = "\(index)"

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let engine: NIOLoopBound<WorkerEngine>
        do {
            engine = try loop.submit { NIOLoopBound(WorkerEngine(workerIndex: index), eventLoop: loop) }.wait()
        } catch {
            logger.critical("cannot start: \(error)")
            exit(1)
        }

        var channels: [any Channel] = []
        for offset in 0..<connections {
            let bootstrap = ClientBootstrap(group: loop).channelInitializer { [logger] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(FrameDecoder(maxFrameBytes: WireProtocol.maxRouterFrameBytes)),
                        WorkerConnectionHandler(engine: engine.value, logger: logger)
                    )
                }
            }
            do {
                channels.append(try bootstrap.withConnectedSocket(CInt(3 + offset)).wait())
            } catch {
                logger.critical("cannot use inherited socket \(3 + offset): \(error)")
                exit(1)
            }
        }
        logger.info("worker started", metadata: ["pid": "\(getpid())", "connections": "\(connections)"])

        // The first connection to close ends the worker.
        let firstClose = loop.makePromise(of: Void.self)
        for channel in channels { channel.closeFuture.cascade(to: firstClose) }
        try? firstClose.futureResult.wait()
        logger.info("router connection closed; exiting")
        exit(0)
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
