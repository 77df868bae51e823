import Logging
import NIOCore
import Shared

/// One router connection: Hello exchange, then config snapshots and decision
/// requests. Answers are encoded into one buffer and written once per read
/// burst, so a batch of requests costs one write.
final class WorkerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = ByteBuffer

    private enum State {
        case awaitingHello
        case ready
        case closed
    }

    private let engine: WorkerEngine
    private let logger: Logger
    private var state = State.awaitingHello
    private var pending: ByteBuffer? = nil

    init(engine: WorkerEngine, logger: Logger) {
        self.engine = engine
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        let hello = Hello(role: .worker, workerIndex: UInt32(self.engine.workerIndex), pid: UInt32(getpid()))
        FrameCodec.encode(Frame(id: 0, body: .hello(hello)), into: &buffer)
        context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch (self.state, frame.body) {
        case (.awaitingHello, .hello(let hello)):
            guard hello.protocolVersion == WireProtocol.version, hello.role == .router else {
                self.protocolError(context, "router hello has protocol \(hello.protocolVersion) role \(hello.role.rawValue); expected \(WireProtocol.version) router")
                return
            }
            self.state = .ready
        case (.ready, .decide(let request)):
            let response = self.engine.decide(request)
            self.queue(Frame(id: frame.id, body: .decision(response)), context: context)
        case (.ready, .config(let message)):
            self.queue(Frame(id: frame.id, body: .configAck(self.apply(message))), context: context)
        case (.closed, _):
            return
        default:
            self.protocolError(context, "unexpected frame in state \(self.state)")
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let buffer = self.pending {
            self.pending = nil
            context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
        }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.protocolError(context, "\(error)")
    }

    private func apply(_ message: ConfigSnapshotMessage) -> ConfigAck {
        do {
            let snapshot = try WorkerSnapshot.decode(message.modelJSON)
            guard snapshot.workerIndex == self.engine.workerIndex else {
                return ConfigAck(version: message.version, error: "snapshot is for worker \(snapshot.workerIndex)")
            }
            try self.engine.apply(snapshot)
            self.logger.info(
                "config applied", metadata: ["version": "\(message.version)", "clients": "\(snapshot.clients.count)"])
            return ConfigAck(version: message.version)
        } catch {
            self.logger.error("config rejected", metadata: ["version": "\(message.version)", "error": "\(error)"])
            return ConfigAck(version: message.version, error: "\(error)")
        }
    }

    private func queue(_ frame: Frame, context: ChannelHandlerContext) {
        if self.pending == nil { self.pending = context.channel.allocator.buffer(capacity: 512) }
        FrameCodec.encode(frame, into: &self.pending!)
    }

    private func protocolError(_ context: ChannelHandlerContext, _ message: String) {
        guard self.state != .closed else { return }
        self.state = .closed
        self.logger.error("closing router connection: protocol error", metadata: ["error": "\(message)"])
        context.close(promise: nil)
    }
}

#if canImport(Glibc)
import Glibc
#endif
