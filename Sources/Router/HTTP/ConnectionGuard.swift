import NIOCore
import NIOHTTP1
import Shared

/// Sits between the response encoder and the request decoder, so it sees
/// every raw read (the first byte of a request starts the header timer) and
/// can answer 408 on a connection with no request in flight — the pipelining
/// handler further in would refuse a response that answers no request.
final class ConnectionGuard: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let timeouts: ConnectionTimeouts
    private let loop: LoopContext

    init(timeouts: ConnectionTimeouts, loop: LoopContext) {
        self.timeouts = timeouts
        self.loop = loop
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let bound = context.loopBound
        self.timeouts.onHeaderTimeout = { [loop] in
            let context = bound.value
            let requestID = loop.requestIDs.next()
            let (head, body) = LocalResponse.make(
                .headerTimeout, requestID: requestID, keepAlive: false, allocator: context.channel.allocator)
            context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
        self.timeouts.onIdleTimeout = {
            bound.value.close(promise: nil)
        }
        if context.channel.isActive { self.timeouts.start() }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.timeouts.start()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.timeouts.bytesReceived()
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timeouts.stop()
        context.fireChannelInactive()
    }
}
