import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL
import Shared

/// The client-traffic listener. Each accepted connection gets one handler,
/// `ClientConnectionHandler`, bound to the LoopContext of the event loop it
/// landed on: the gateway's own HTTP/1.1 codec, not NIOHTTP1's handler
/// chain, which on this path cost three times as much CPU per request
/// (measured: 38 µs vs 13 µs for a trivial response; bench/run compares the whole path).
enum HTTPListener {
    /// With `tls`, each connection gets a NIOSSL server handler in front
    /// (the `server.tls` listener, see `TLSListener`).
    static func bind(
        group: any EventLoopGroup, address: HostPort, loops: LoopRegistry, quiesce: ServerQuiescingHelper,
        tls: NIOSSLContext? = nil
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
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.addHandler(
                        ClientConnectionHandler(loop: loops.context(for: channel.eventLoop), tls: tls != nil))
                }
            }
            .bind(host: address.host, port: address.port)
            .wait()
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
