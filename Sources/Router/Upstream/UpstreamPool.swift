import NIOCore
import NIOHTTP1
import NIOPosix

/// Keep-alive connections to upstreams, per event loop, so a request and
/// its upstream exchange never change threads. Idle connections are reused
/// last-in-first-out (the warmest one first); a connection the upstream
/// closed while idle is dropped when noticed.
final class UpstreamPool {
    struct Key: Hashable {
        let host: String
        let port: Int
    }

    static let maxIdlePerKey = 512

    private let eventLoop: any EventLoop
    private var idle: [Key: [UpstreamConnection]] = [:]

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func takeIdle(_ key: Key) -> UpstreamConnection? {
        while let connection = self.idle[key]?.popLast() {
            if connection.channel.isActive {
                connection.isIdle = false
                return connection
            }
        }
        return nil
    }

    func connect(_ key: Key, timeout: TimeAmount) -> EventLoopFuture<UpstreamConnection> {
        ClientBootstrap(group: self.eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
            .connect(host: key.host, port: key.port)
            .assumeIsolated()
            .flatMapThrowing { channel in
                let handler = try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                let connection = UpstreamConnection(key: key, channel: channel, handler: handler)
                handler.pool = self
                handler.connection = connection
                return connection
            }
            .nonisolated()
    }

    /// Back to the pool if it can carry another request; closed otherwise.
    func release(_ connection: UpstreamConnection) {
        connection.handler.delegate = nil
        guard connection.channel.isActive, (self.idle[connection.key]?.count ?? 0) < Self.maxIdlePerKey else {
            connection.channel.close(promise: nil)
            return
        }
        connection.isIdle = true
        self.idle[connection.key, default: []].append(connection)
    }

    func idleConnectionClosed(_ connection: UpstreamConnection) {
        guard connection.isIdle else { return }
        connection.isIdle = false
        self.idle[connection.key]?.removeAll { $0 === connection }
    }

    var idleCount: Int { self.idle.values.reduce(0) { $0 + $1.count } }
}

final class UpstreamConnection {
    let key: UpstreamPool.Key
    let channel: any Channel
    let handler: UpstreamHandler
    var isIdle = false

    init(key: UpstreamPool.Key, channel: any Channel, handler: UpstreamHandler) {
        self.key = key
        self.channel = channel
        self.handler = handler
    }
}

/// The request handler that currently owns an upstream connection.
protocol UpstreamDelegate: AnyObject {
    func upstreamResponseHead(_ head: HTTPResponseHead)
    func upstreamResponseBody(_ body: ByteBuffer)
    func upstreamResponseEnd()
    func upstreamReadComplete()
    func upstreamFailed(_ failure: UpstreamFailure)
    func upstreamWritabilityChanged(isWritable: Bool)
}

enum UpstreamFailure: Error, Equatable {
    case closed
    case malformed(String)
    case other(String)
}

/// Sits on an upstream channel and hands response parts to its delegate.
/// Reads can be paused while the client cannot take more bytes.
final class UpstreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    weak var delegate: (any UpstreamDelegate)?
    weak var pool: UpstreamPool?
    weak var connection: UpstreamConnection?
    private var readsPaused = false
    private var readPending = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let delegate = self.delegate else { return }
        switch Self.unwrapInboundIn(data) {
        case .head(let head): delegate.upstreamResponseHead(head)
        case .body(let body): delegate.upstreamResponseBody(body)
        case .end: delegate.upstreamResponseEnd()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let delegate = self.delegate {
            self.delegate = nil
            delegate.upstreamFailed(.closed)
        } else if let connection = self.connection {
            self.pool?.idleConnectionClosed(connection)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let delegate = self.delegate {
            self.delegate = nil
            let failure: UpstreamFailure = error is HTTPParserError ? .malformed("\(error)") : .other("\(error)")
            delegate.upstreamFailed(failure)
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if self.readsPaused {
            self.readPending = true
        } else {
            context.read()
        }
    }

    func setReadsPaused(_ paused: Bool) {
        self.readsPaused = paused
        if !paused, self.readPending, let context = self.context {
            self.readPending = false
            context.read()
        }
    }
}
