import NIOCore
import NIOPosix

// nio-passthrough LISTEN_PORT UPSTREAM_PORT [THREADS]
// Every client connection gets its own upstream connection; bytes pass
// through unchanged both ways. Loopback only.
guard CommandLine.arguments.count >= 3, let port = Int(CommandLine.arguments[1]), let upstreamPort = Int(CommandLine.arguments[2]) else {
    fatalError("usage: nio-passthrough LISTEN_PORT UPSTREAM_PORT [THREADS]")
}
let threads = CommandLine.arguments.count > 3 ? Int(CommandLine.arguments[3]) ?? 2 : 2

/// The upstream side: what the upstream sends goes to the client.
final class UpstreamSide: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let client: any Channel
    init(client: any Channel) { self.client = client }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { self.client.write(Self.unwrapInboundIn(data), promise: nil) }
    func channelReadComplete(context: ChannelHandlerContext) { self.client.flush() }
    func channelInactive(context: ChannelHandlerContext) { self.client.close(promise: nil) }
}

/// The client side: connects its upstream, then forwards what the client sends.
final class ClientSide: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let upstreamPort: Int
    var upstream: (any Channel)?
    var early: [ByteBuffer] = []
    init(upstreamPort: Int) { self.upstreamPort = upstreamPort }

    func channelActive(context: ChannelHandlerContext) {
        let client = context.channel
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(UpstreamSide(client: client)) }
            }
            .connect(host: "127.0.0.1", port: self.upstreamPort)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    self.upstream = channel
                    for data in self.early { channel.write(data, promise: nil) }
                    self.early = []
                    channel.flush()
                case .failure:
                    client.close(promise: nil)
                }
            }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = Self.unwrapInboundIn(data)
        if let upstream = self.upstream { upstream.write(bytes, promise: nil) } else { self.early.append(bytes) }
    }
    func channelReadComplete(context: ChannelHandlerContext) { self.upstream?.flush() }
    func channelInactive(context: ChannelHandlerContext) { self.upstream?.close(promise: nil) }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ClientSide(upstreamPort: upstreamPort)) }
    }
    .bind(host: "127.0.0.1", port: port)
    .wait()
try server.closeFuture.wait()
