import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import Shared

/// The client-traffic listener. Each accepted connection gets the pipeline
///
///     HTTPResponseEncoder → ConnectionGuard → HTTPRequestDecoder
///       → HTTPServerPipelineHandler → ProtocolErrorResponder → GatewayHandler
///
/// with the parser's limits set from `server.limits`, and is bound to the
/// LoopContext of the event loop it landed on.
enum HTTPListener {
    static func bind(
        group: any EventLoopGroup, address: HostPort, loops: LoopRegistry, quiesce: ServerQuiescingHelper
    ) throws -> any Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try configure(channel, loop: loops.context(for: channel.eventLoop))
                }
            }
            .bind(host: address.host, port: address.port)
            .wait()
    }

    private static func configure(_ channel: any Channel, loop: LoopContext) throws {
        let limits = loop.limits
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        // The parser counts the URL and every header name and value; the
        // exact SPEC count (whole request line and header lines) is checked
        // on the parsed head. Together they bound what is ever buffered.
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
        let sync = channel.pipeline.syncOperations
        try sync.configureHTTPServerPipeline(
            position: .last,
            withPipeliningAssistance: true,
            withServerUpgrade: nil,
            withErrorHandling: false,
            withOutboundHeaderValidation: true,
            withEncoderConfiguration: HTTPResponseEncoder.Configuration(),
            withDecoderLimitConfiguration: decoderLimits)
        let encoder = try sync.handler(type: HTTPResponseEncoder.self)
        let timeouts = ConnectionTimeouts(
            eventLoop: channel.eventLoop, headerTimeoutMs: limits.headerTimeoutMs, idleTimeoutMs: limits.idleTimeoutMs)
        try sync.addHandler(ConnectionGuard(timeouts: timeouts, loop: loop), position: .after(encoder))
        try sync.addHandler(ProtocolErrorResponder(loop: loop))
        try sync.addHandler(GatewayHandler(loop: loop, timeouts: timeouts))
    }
}

/// The LoopContext of each router event loop.
struct LoopRegistry: Sendable {
    let contexts: [NIOLoopBound<LoopContext>]

    /// Must be called on `eventLoop`.
    func context(for eventLoop: any EventLoop) -> LoopContext {
        for bound in self.contexts where bound.eventLoop === eventLoop { return bound.value }
        preconditionFailure("channel on an event loop the router did not create")
    }

    func forEach(_ body: @escaping @Sendable (LoopContext) -> Void) {
        for bound in self.contexts {
            bound.eventLoop.execute { body(bound.value) }
        }
    }
}
