import Logging
import NIOCore
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// The channel side of a `WorkerLink`: Hello exchange, then decisions and
/// config acks. Any protocol violation closes the connection with a logged
/// error; the supervisor then replaces the worker.
final class WorkerLinkHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let link: WorkerLink
    private let generation: Int
    private let loopIndex: Int
    private let supervisor: WorkerSupervisor
    private let logger: Logger
    private var greeted = false
    private var closed = false
    private var frames = FrameStream(maxFrameBytes: WireProtocol.maxWorkerFrameBytes)

    init(link: WorkerLink, generation: Int, loopIndex: Int, supervisor: WorkerSupervisor, logger: Logger) {
        self.link = link
        self.generation = generation
        self.loopIndex = loopIndex
        self.supervisor = supervisor
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        let hello = Hello(role: .router, workerIndex: UInt32(self.link.slot), pid: UInt32(getpid()))
        FrameCodec.encode(Frame(id: 0, body: .hello(hello)), into: &buffer)
        context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.frames.append(Self.unwrapInboundIn(data))
        do {
            while !self.closed, let frame = try self.frames.next() {
                self.handle(frame, context: context)
            }
        } catch {
            self.fail(context, "\(error)")
        }
    }

    private func handle(_ frame: Frame, context: ChannelHandlerContext) {
        switch frame.body {
        case .hello(let hello) where !self.greeted:
            guard hello.protocolVersion == WireProtocol.version, hello.role == .worker,
                Int(hello.workerIndex) == self.link.slot
            else {
                self.fail(context, "worker hello: protocol \(hello.protocolVersion), role \(hello.role.rawValue), index \(hello.workerIndex); expected \(WireProtocol.version), worker, \(self.link.slot)")
                return
            }
            self.greeted = true
            self.supervisor.linkGreeted(slot: self.link.slot, generation: self.generation, loopIndex: self.loopIndex)
        case .decision(let response) where self.greeted:
            self.link.decisionReceived(callID: frame.id, response)
        case .configAck(let ack) where self.greeted:
            self.supervisor.configAcked(slot: self.link.slot, generation: self.generation, ack: ack)
        case .status(let status) where self.greeted:
            self.supervisor.statusReported(slot: self.link.slot, generation: self.generation, status: status)
        case .keyRefresh(let source) where self.greeted:
            self.supervisor.keyRefreshRequested(source: source)
        default:
            self.fail(context, "unexpected frame from worker")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.supervisor.linkLost(slot: self.link.slot, generation: self.generation)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(context, "\(error)")
    }

    private func fail(_ context: ChannelHandlerContext, _ message: String) {
        guard !self.closed else { return }
        self.closed = true
        self.logger.error(
            "closing worker connection: protocol error",
            metadata: ["worker": "\(self.link.slot)", "error": "\(message)"])
        context.close(promise: nil)
    }
}
