import NIOCore
import NIOHTTP1
import Shared

/// Answers requests the parser rejected: 431 when the head passed
/// `max_header_bytes`, 400 for anything else malformed — both with the
/// SPEC §2 JSON body and an `X-Request-ID`, then closes (after a parse
/// error the byte stream cannot be trusted). Replaces NIO's
/// `HTTPServerProtocolErrorHandler`, which sends an empty 400.
final class ProtocolErrorResponder: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let loop: LoopContext
    private var responseInProgress = false

    init(loop: LoopContext) {
        self.loop = loop
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if !self.responseInProgress {
            let refusal: GatewayError = parserError == .headerOverflow ? .headersTooLarge : .malformedRequest
            let requestID = self.loop.requestIDs.next()
            let (head, body) = LocalResponse.make(refusal, requestID: requestID, keepAlive: false, allocator: context.channel.allocator)
            context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
            self.loop.decisionLog.append(
                DecisionRecord(
                    unixMillis: WallClock.nowMillis(), requestID: requestID, clientID: "", profileID: "", authType: "",
                    policyID: "", collection: "", method: "", path: "", status: refusal.status, reason: refusal.reason,
                    worker: -1, latencyMicros: 0))
        }
        // Let the handlers behind us drop their request state.
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch Self.unwrapOutboundIn(data) {
        case .head(let head) where head.isInformational: break
        case .head: self.responseInProgress = true
        case .body: break
        case .end: self.responseInProgress = false
        }
        context.write(data, promise: promise)
    }
}

extension HTTPResponseHead {
    var isInformational: Bool { self.status.code >= 100 && self.status.code < 200 && self.status.code != 101 }
}
