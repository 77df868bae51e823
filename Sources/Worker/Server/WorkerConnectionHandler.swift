import Logging
import NIOCore
import Shared

/// One router connection: Hello exchange, then config snapshots and decision
/// requests. Answers are encoded into one buffer and written once per read
/// burst, so a batch of requests costs one write.
final class WorkerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case awaitingHello
        case ready
        case closed
    }

    private let engine: WorkerEngine
    private let room: KeyWaitRoom
    private let logger: Logger
    private var state = State.awaitingHello
    private var pending: ByteBuffer? = nil
    private var frames = FrameStream(maxFrameBytes: WireProtocol.maxRouterFrameBytes)
    /// Which answers the router already holds as templates. Only `queue`
    /// uses it: frames written elsewhere (a parked request's late answer)
    /// go whole, so the order of writes cannot matter to the table.
    private var templates = DecisionTemplateEncoder()

    init(engine: WorkerEngine, room: KeyWaitRoom, logger: Logger) {
        self.engine = engine
        self.room = room
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
        self.frames.append(Self.unwrapInboundIn(data))
        do {
            while self.state != .closed, let frame = try self.frames.next() {
                self.handle(frame, context: context)
            }
        } catch {
            self.protocolError(context, "\(error)")
        }
    }

    private func handle(_ frame: Frame, context: ChannelHandlerContext) {
        switch (self.state, frame.body) {
        case (.awaitingHello, .hello(let hello)):
            guard hello.protocolVersion == WireProtocol.version, hello.role == .router else {
                self.protocolError(context, "router hello has protocol \(hello.protocolVersion) role \(hello.role.rawValue); expected \(WireProtocol.version) router")
                return
            }
            self.state = .ready
        case (.ready, .decide(let request)):
            switch self.engine.decide(request, mayWaitForKeys: true) {
            case .response(let response):
                self.queue(Frame(id: frame.id, body: .decision(response)), context: context)
            case .waitForKeys(let source):
                self.park(request, id: frame.id, source: source, context: context)
            }
        case (.ready, .keySet(let message)):
            self.applyKeys(message)
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
            // `NIOAny(_:)` where the type is known: the generic
            // `wrapOutboundOut` settled it with dynamic casts.
            context.writeAndFlush(NIOAny(buffer), promise: nil)
        }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.protocolError(context, "\(error)")
    }

    private func apply(_ message: ConfigSnapshotMessage) -> ConfigAck {
        if !message.deltaJSON.isEmpty {
            do {
                let delta = try WorkerDelta.decode(message.deltaJSON)
                try self.engine.apply(delta, base: message.baseVersion, version: message.version)
                let quiet = delta.upserts.isEmpty && delta.removed.isEmpty && delta.policies == nil && delta.collections == nil
                self.logger.log(
                    level: quiet ? .debug : .info, "config delta applied",
                    metadata: [
                        "version": "\(message.version)", "upserts": "\(delta.upserts.count)", "removed": "\(delta.removed.count)",
                        "policies": "\(delta.policies?.count ?? 0)", "collections": "\(delta.collections?.count ?? 0)",
                    ])
                return ConfigAck(version: message.version)
            } catch {
                return ConfigAck(version: message.version, error: "delta: \(error)")
            }
        }
        // An older whole snapshot overtaken by a newer one: already past it.
        if !message.modelJSON.isEmpty, self.engine.model != nil, message.version < self.engine.version {
            return ConfigAck(version: self.engine.version)
        }
        // No model: this worker's share did not change, only the version.
        if message.modelJSON.isEmpty {
            self.engine.acknowledge(version: message.version)
            return ConfigAck(version: message.version)
        }
        do {
            let snapshot = try WorkerSnapshot.decode(message.modelJSON)
            guard snapshot.workerIndex == self.engine.workerIndex else {
                return ConfigAck(version: message.version, error: "snapshot is for worker \(snapshot.workerIndex)")
            }
            try self.engine.apply(snapshot)
            self.engine.acknowledge(version: message.version)
            self.logger.info(
                "config applied", metadata: ["version": "\(message.version)", "clients": "\(snapshot.clients.count)"])
            return ConfigAck(version: message.version)
        } catch {
            self.logger.error("config rejected", metadata: ["version": "\(message.version)", "error": "\(error)"])
            return ConfigAck(version: message.version, error: "\(error)")
        }
    }

    private func park(_ request: DecisionRequest, id: UInt64, source: String, context: ChannelHandlerContext) {
        let channel = context.channel
        let waiter = KeyWaitRoom.Waiter(request: request) { response in
            var buffer = channel.allocator.buffer(capacity: 256)
            FrameCodec.encode(Frame(id: id, body: .decision(response)), into: &buffer)
            channel.writeAndFlush(buffer, promise: nil)
        }
        switch self.room.park(waiter, source: source) {
        case nil:
            // Room full: answer now from the keys we have.
            self.queue(Frame(id: id, body: .decision(self.engine.decide(request))), context: context)
        case true?:
            self.queue(Frame(id: 0, body: .keyRefresh(source: source)), context: context)
        case false?:
            break
        }
    }

    private func applyKeys(_ message: KeySetMessage) {
        let previous = self.engine.auth.keys.sets[message.source]
        let set = self.engine.applyKeys(message)
        if previous?.version != set.version {
            self.logger.info(
                "oidc keys updated",
                metadata: ["source": "\(message.source)", "keys": "\(set.keys.count)", "version": "\(set.version)"])
            for skipped in set.skipped {
                self.logger.warning("oidc key skipped", metadata: ["source": "\(message.source)", "key": "\(skipped)"])
            }
        }
        self.room.release(message.source)
    }

    private func queue(_ frame: Frame, context: ChannelHandlerContext) {
        if self.pending == nil { self.pending = context.channel.allocator.buffer(capacity: 512) }
        FrameCodec.encode(frame, into: &self.pending!, templates: &self.templates)
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
