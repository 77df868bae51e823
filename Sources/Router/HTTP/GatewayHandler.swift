import NIOCore
import NIOHTTP1
import NIOPosix
import Shared

/// One client connection's request handling: ask the owning worker for a
/// decision, then either answer the refusal or proxy to the upstream,
/// streaming bodies both ways. NIO's pipelining handler in front delivers one
/// request at a time and keeps responses in order.
///
/// Per-request state lives in an `Exchange`; callbacks from the worker link
/// and the upstream connection carry it back, and a callback for an exchange
/// that is no longer current is ignored.
final class GatewayHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Body bytes held while waiting for the decision or the upstream
    /// connection before reads are paused.
    static let maxBufferedBodyBytes = 256 * 1024

    private let loop: LoopContext
    private let timeouts: ConnectionTimeouts
    private var context: ChannelHandlerContext?
    private var peer: IPAddress?
    private var peerTrusted = false
    private var exchange: Exchange?
    private var readsPaused = false
    private var readPending = false
    private var upstreamNeedsFlush: UpstreamConnection?

    init(loop: LoopContext, timeouts: ConnectionTimeouts) {
        self.loop = loop
        self.timeouts = timeouts
    }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let address = context.channel.remoteAddress { self.setPeer(address) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if self.peer == nil, let address = context.channel.remoteAddress { self.setPeer(address) }
        context.fireChannelActive()
    }

    private func setPeer(_ address: SocketAddress) {
        self.peer = IPAddress(socketAddress: address)
        if let peer = self.peer { self.peerTrusted = self.loop.snapshot.trustedProxies.contains(peer) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.begin(head, context: context)
        case .body(let body):
            self.requestBody(body)
        case .end:
            self.requestEnd()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let upstream = self.upstreamNeedsFlush {
            self.upstreamNeedsFlush = nil
            upstream.channel.flush()
        }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The client cannot take more: stop reading the upstream until it can.
        self.exchange?.upstream?.handler.setReadsPaused(!context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let exchange = self.exchange {
            self.exchange = nil
            self.abandon(exchange, status: 499, reason: "client_closed")
        }
        self.timeouts.stop()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Parser errors were answered by ProtocolErrorResponder; whatever it
        // is, this connection is done.
        if let exchange = self.exchange {
            self.exchange = nil
            self.abandon(exchange, status: 400, reason: ReasonCode.malformedRequest.rawValue)
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

    private func setReadsPaused(_ paused: Bool) {
        self.readsPaused = paused
        if !paused, self.readPending, let context = self.context {
            self.readPending = false
            context.read()
        }
    }

    // MARK: request

    private func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        self.timeouts.headReceived()
        let inspector = RequestHeadInspector(head)
        let requestID =
            inspector.requestID.flatMap { RequestIDGenerator.isAcceptable($0) ? $0 : nil } ?? self.loop.requestIDs.next()
        let worker = self.loop.ring.worker(for: inspector.clientID)
        let exchange = Exchange(
            handler: self, head: head, requestID: requestID, clientID: inspector.clientID,
            profileID: inspector.profileID, worker: worker, expectsContinue: inspector.expectsContinue)
        self.exchange = exchange

        if inspector.headBytes > self.loop.limits.maxHeaderBytes {
            return self.respondLocally(exchange, .headersTooLarge)
        }
        if let length = inspector.contentLength, length > self.loop.snapshot.maxBodyBytes {
            return self.respondLocally(exchange, .bodyTooLarge)
        }
        if let name = inspector.duplicate {
            return self.respondLocally(
                exchange, GatewayError(400, .badRequest, .malformedRequest, "\(name) sent more than once", closeConnection: true))
        }
        guard let target = RequestTarget.originForm(head.uri), !RequestTarget.hasDotSegment(target) else {
            return self.respondLocally(
                exchange, GatewayError(400, .badRequest, .malformedRequest, "request target must be a plain absolute path"))
        }
        exchange.target = target

        var sourceIP = self.peer
        if self.peerTrusted, let peer = self.peer, !inspector.forwardedFor.isEmpty {
            switch ForwardedFor.clientAddress(peer: peer, headerValues: inspector.forwardedFor, trusted: self.loop.snapshot.trustedProxies) {
            case .address(let address): sourceIP = address
            case .unknown: sourceIP = nil
            }
        }
        let request = DecisionRequest(
            clientID: inspector.clientID, profileID: inspector.profileID, method: head.method.rawValue, path: target,
            sourceIP: sourceIP, authorization: inspector.authorization, requestID: requestID)
        guard let callID = self.loop.links[worker].decide(request, waiter: exchange) else {
            return self.respondLocally(exchange, .workerUnavailable())
        }
        exchange.callID = callID
    }

    private func requestBody(_ body: ByteBuffer) {
        guard let exchange = self.exchange else { return }
        exchange.bodyBytes += body.readableBytes
        if exchange.bodyBytes > self.loop.snapshot.maxBodyBytes, exchange.phase != .draining {
            // Never hand an oversized body on: cut the upstream request off
            // mid-body so the upstream cannot take it for a complete one.
            exchange.closeUpstream()
            if exchange.responseStarted {
                self.context?.close(promise: nil)
            } else {
                self.respondLocally(exchange, .bodyTooLarge)
            }
            return
        }
        switch exchange.phase {
        case .deciding, .connecting:
            exchange.buffered.append(body)
            exchange.bufferedBytes += body.readableBytes
            if exchange.bufferedBytes > Self.maxBufferedBodyBytes { self.setReadsPaused(true) }
        case .proxying:
            guard let upstream = exchange.upstream else { return }
            upstream.channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
            self.upstreamNeedsFlush = upstream
            if !upstream.channel.isWritable { self.setReadsPaused(true) }
        case .draining:
            break
        }
    }

    private func requestEnd() {
        guard let exchange = self.exchange else { return }
        exchange.requestEnded = true
        switch exchange.phase {
        case .deciding, .connecting:
            break
        case .proxying:
            if let upstream = exchange.upstream {
                upstream.channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                if self.upstreamNeedsFlush === upstream { self.upstreamNeedsFlush = nil }
            }
        case .draining:
            // The response went out before the body finished arriving.
            self.exchange = nil
            self.timeouts.requestCompleted()
            if !exchange.keepAlive { self.context?.close(promise: nil) }
        }
    }

    // MARK: decision

    fileprivate func decisionArrived(_ exchange: Exchange, _ response: DecisionResponse) {
        guard exchange === self.exchange, exchange.phase == .deciding else { return }
        exchange.decision = response
        switch response.outcome {
        case .allow:
            self.allow(exchange, response)
        case .deny, .unavailable:
            var refusal = LocalResponse.error(from: response)
            // The client is waiting to be told to send its body; it will not
            // get that, so this connection cannot be reused safely.
            if exchange.expectsContinue && !exchange.requestEnded { refusal.closeConnection = true }
            self.respondLocally(exchange, refusal)
        }
    }

    fileprivate func decisionFailed(_ exchange: Exchange, _ error: GatewayError) {
        guard exchange === self.exchange, exchange.phase == .deciding else { return }
        self.respondLocally(exchange, error)
    }

    private func allow(_ exchange: Exchange, _ response: DecisionResponse) {
        guard let route = self.loop.snapshot.routes[response.collectionID] else {
            return self.respondLocally(exchange, .badGateway(.unknownCollection, "collection \(response.collectionID) has no upstream"))
        }
        exchange.route = route
        exchange.upstreamHead = UpstreamRequestBuilder.build(
            client: exchange.head, route: route, stripPrefixBytes: response.stripPrefixBytes,
            identity: .init(
                requestID: exchange.requestID, clientID: exchange.clientID, profileID: exchange.profileID,
                peer: self.peer, peerTrusted: self.peerTrusted),
            target: exchange.target)
        if exchange.expectsContinue && !exchange.requestEnded, let context = self.context {
            let head = HTTPResponseHead(version: exchange.head.version, status: .continue)
            context.writeAndFlush(Self.wrapOutboundOut(.head(head)), promise: nil)
        }
        exchange.timeoutTask = self.loop.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(route.timeoutMs))) {
            [weak exchange] in
            guard let exchange else { return }
            self.upstreamTimedOut(exchange)
        }
        self.connectUpstream(exchange, route: route)
    }

    private func connectUpstream(_ exchange: Exchange, route: UpstreamRoute) {
        let key = UpstreamPool.Key(host: route.url.host, port: route.url.port)
        if let connection = self.loop.upstreams.takeIdle(key) {
            self.attach(exchange, connection, reused: true)
            return
        }
        exchange.phase = .connecting
        self.loop.upstreams.connect(key, timeout: .milliseconds(Int64(route.timeoutMs))).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let connection):
                guard exchange === self.exchange, exchange.phase == .connecting else {
                    // Timed out or abandoned meanwhile: keep the connection for the next one.
                    self.loop.upstreams.release(connection)
                    return
                }
                self.attach(exchange, connection, reused: false)
            case .failure(let error):
                guard exchange === self.exchange, exchange.phase == .connecting else { return }
                exchange.cancelTimeout()
                if case ChannelError.connectTimeout = error {
                    self.respondLocally(exchange, .upstreamTimeout)
                } else {
                    self.respondLocally(exchange, .badGateway(.upstreamRefused, "the upstream refused the connection"))
                }
            }
        }
    }

    private func attach(_ exchange: Exchange, _ connection: UpstreamConnection, reused: Bool) {
        exchange.phase = .proxying
        exchange.upstream = connection
        exchange.upstreamReused = reused
        connection.handler.delegate = exchange
        connection.handler.setReadsPaused(!(self.context?.channel.isWritable ?? true))
        let channel = connection.channel
        if let head = exchange.upstreamHead { channel.write(HTTPClientRequestPart.head(head), promise: nil) }
        for part in exchange.buffered { channel.write(HTTPClientRequestPart.body(.byteBuffer(part)), promise: nil) }
        exchange.buffered.removeAll()
        exchange.bufferedBytes = 0
        if exchange.requestEnded { channel.write(HTTPClientRequestPart.end(nil), promise: nil) }
        channel.flush()
        self.setReadsPaused(!channel.isWritable)
    }

    // MARK: upstream events

    fileprivate func upstreamHead(_ exchange: Exchange, _ upstream: HTTPResponseHead) {
        guard exchange === self.exchange, let context = self.context else { return }
        exchange.cancelTimeout()
        exchange.responseStarted = true
        exchange.responseStatus = Int(upstream.status.code)
        exchange.upstreamKeepAlive = upstream.isKeepAlive
        var connectionTokens: Set<String> = []
        for value in upstream.headers["connection"] {
            for token in value.split(separator: ",") { connectionTokens.insert(token.trimmingSpaces().lowercased()) }
        }
        var headers = HTTPHeaders()
        headers.reserveCapacity(upstream.headers.count + 4)
        for (name, value) in upstream.headers {
            let lower = name.lowercased()
            if UpstreamRequestBuilder.hopByHop.contains(lower) || connectionTokens.contains(lower) { continue }
            if lower == "x-request-id" || lower == "ratelimit" || lower == "ratelimit-policy" { continue }
            headers.add(name: name, value: value)
        }
        headers.add(name: "X-Request-ID", value: exchange.requestID)
        if let decision = exchange.decision, !decision.rateLimitPolicy.isEmpty {
            headers.add(name: "RateLimit-Policy", value: decision.rateLimitPolicy)
            headers.add(name: "RateLimit", value: decision.rateLimit)
        }
        if !exchange.keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: exchange.head.version, status: upstream.status, headers: headers)
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
    }

    fileprivate func upstreamBody(_ exchange: Exchange, _ body: ByteBuffer) {
        guard exchange === self.exchange, let context = self.context else { return }
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
    }

    fileprivate func upstreamReadComplete(_ exchange: Exchange) {
        guard exchange === self.exchange else { return }
        self.context?.flush()
        if let context = self.context, !context.channel.isWritable { exchange.upstream?.handler.setReadsPaused(true) }
    }

    fileprivate func upstreamEnd(_ exchange: Exchange) {
        guard exchange === self.exchange, let upstream = exchange.upstream else { return }
        exchange.upstream = nil
        if exchange.upstreamKeepAlive && exchange.requestEnded {
            self.loop.upstreams.release(upstream)
        } else {
            upstream.handler.delegate = nil
            upstream.channel.close(promise: nil)
        }
        self.finish(exchange, status: exchange.responseStatus, reason: ReasonCode.allowed.rawValue) { context in
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
        }
    }

    fileprivate func upstreamWritability(_ exchange: Exchange, isWritable: Bool) {
        guard exchange === self.exchange, exchange.phase == .proxying else { return }
        self.setReadsPaused(!isWritable)
    }

    fileprivate func upstreamFailed(_ exchange: Exchange, _ failure: UpstreamFailure) {
        guard exchange === self.exchange else { return }
        let upstream = exchange.upstream
        exchange.upstream = nil
        upstream?.channel.close(promise: nil)
        if exchange.responseStarted {
            // Part of the response is out; the only honest signal left is to
            // cut the connection so the client sees a truncated response.
            self.exchange = nil
            self.log(exchange, status: exchange.responseStatus, reason: ReasonCode.upstreamReset.rawValue)
            self.context?.close(promise: nil)
            return
        }
        // A pooled connection the upstream had just closed: safe to retry
        // once when nothing of the request can have been acted on.
        if exchange.upstreamReused, !exchange.retried, failure == .closed, exchange.requestEnded, exchange.bodyBytes == 0,
            exchange.head.method.isIdempotent, let route = exchange.route
        {
            exchange.retried = true
            exchange.phase = .connecting
            self.connectUpstream(exchange, route: route)
            return
        }
        exchange.cancelTimeout()
        switch failure {
        case .malformed:
            self.respondLocally(exchange, .badGateway(.upstreamMalformed, "the upstream sent a malformed response"))
        case .closed, .other:
            self.respondLocally(exchange, .badGateway(.upstreamReset, "the upstream closed the connection without a response"))
        }
    }

    private func upstreamTimedOut(_ exchange: Exchange) {
        guard exchange === self.exchange, !exchange.responseStarted, exchange.phase == .connecting || exchange.phase == .proxying else {
            return
        }
        exchange.timeoutTask = nil
        exchange.closeUpstream()
        self.respondLocally(exchange, .upstreamTimeout)
    }

    // MARK: answering

    private func respondLocally(_ exchange: Exchange, _ error: GatewayError) {
        guard exchange === self.exchange, let context = self.context else { return }
        exchange.cancelTimeout()
        if exchange.phase == .deciding, exchange.callID != 0 { self.loop.links[exchange.worker].cancel(exchange.callID) }
        exchange.closeUpstream()
        let decision = exchange.decision
        let (head, body) = LocalResponse.make(
            error, requestID: exchange.requestID, version: exchange.head.version,
            keepAlive: exchange.keepAlive && !error.closeConnection,
            rateLimitPolicy: decision?.rateLimitPolicy ?? "", rateLimit: decision?.rateLimit ?? "",
            allocator: context.channel.allocator)
        if error.closeConnection { exchange.keepAlive = false }
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        self.finish(exchange, status: error.status, reason: error.reason) { context in
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
        }
    }

    /// Completes the response. State is settled *before* the final write:
    /// writing `.end` lets the pipelining handler deliver the next request
    /// re-entrantly, which must find this one gone.
    private func finish(
        _ exchange: Exchange, status: Int, reason: String, writeEnd: (ChannelHandlerContext) -> EventLoopFuture<Void>
    ) {
        guard let context = self.context else { return }
        exchange.responseStarted = true
        let close = !exchange.keepAlive
        if exchange.requestEnded || close {
            self.exchange = nil
            if !close { self.timeouts.requestCompleted() }
        } else {
            exchange.phase = .draining
        }
        self.setReadsPaused(false)
        self.log(exchange, status: status, reason: reason)
        let written = writeEnd(context)
        if close {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    private func abandon(_ exchange: Exchange, status: Int, reason: String) {
        exchange.cancelTimeout()
        if exchange.phase == .deciding, exchange.callID != 0 { self.loop.links[exchange.worker].cancel(exchange.callID) }
        exchange.closeUpstream()
        if !exchange.responseStarted { self.log(exchange, status: status, reason: reason) }
    }

    private func log(_ exchange: Exchange, status: Int, reason: String) {
        guard self.loop.decisionLog.isEnabled else { return }
        let decision = exchange.decision
        let elapsed = NIODeadline.now() - exchange.startedAt
        self.loop.decisionLog.append(
            DecisionRecord(
                unixMillis: WallClock.nowMillis(), requestID: exchange.requestID, clientID: exchange.clientID,
                profileID: exchange.profileID, authType: decision?.authType ?? "", policyID: decision?.policyID ?? "",
                collection: decision?.collectionID ?? "", method: exchange.head.method.rawValue, path: exchange.target,
                status: status, reason: reason, worker: exchange.worker, latencyMicros: elapsed.nanoseconds / 1000))
    }
}

/// One request's state, from head to the end of its response.
final class Exchange: DecisionWaiter, UpstreamDelegate {
    enum Phase {
        case deciding
        case connecting
        case proxying
        /// Response complete; the rest of the request body is read and dropped.
        case draining
    }

    private unowned let handler: GatewayHandler
    let head: HTTPRequestHead
    let requestID: String
    let clientID: String
    let profileID: String
    let worker: Int
    let expectsContinue: Bool
    let startedAt = NIODeadline.now()
    var keepAlive: Bool
    var target: String
    var phase = Phase.deciding
    var callID: UInt64 = 0
    var decision: DecisionResponse?
    var route: UpstreamRoute?
    var upstreamHead: HTTPRequestHead?
    var buffered: [ByteBuffer] = []
    var bufferedBytes = 0
    var bodyBytes = 0
    var requestEnded = false
    var upstream: UpstreamConnection?
    var upstreamReused = false
    var upstreamKeepAlive = true
    var retried = false
    var responseStarted = false
    var responseStatus = 0
    var timeoutTask: Scheduled<Void>?

    init(handler: GatewayHandler, head: HTTPRequestHead, requestID: String, clientID: String, profileID: String, worker: Int, expectsContinue: Bool) {
        self.handler = handler
        self.head = head
        self.requestID = requestID
        self.clientID = clientID
        self.profileID = profileID
        self.worker = worker
        self.expectsContinue = expectsContinue
        self.keepAlive = head.isKeepAlive
        self.target = head.uri
    }

    func cancelTimeout() {
        self.timeoutTask?.cancel()
        self.timeoutTask = nil
    }

    /// Drops the upstream connection without returning it to the pool: it is
    /// mid-exchange and its next bytes would belong to this request.
    func closeUpstream() {
        guard let upstream = self.upstream else { return }
        self.upstream = nil
        upstream.handler.delegate = nil
        upstream.channel.close(promise: nil)
    }

    func decisionArrived(_ response: DecisionResponse, callID: UInt64) { self.handler.decisionArrived(self, response) }
    func decisionFailed(_ error: GatewayError, callID: UInt64) { self.handler.decisionFailed(self, error) }
    func upstreamResponseHead(_ head: HTTPResponseHead) { self.handler.upstreamHead(self, head) }
    func upstreamResponseBody(_ body: ByteBuffer) { self.handler.upstreamBody(self, body) }
    func upstreamResponseEnd() { self.handler.upstreamEnd(self) }
    func upstreamReadComplete() { self.handler.upstreamReadComplete(self) }
    func upstreamFailed(_ failure: UpstreamFailure) { self.handler.upstreamFailed(self, failure) }
    func upstreamWritabilityChanged(isWritable: Bool) { self.handler.upstreamWritability(self, isWritable: isWritable) }
}

extension HTTPMethod {
    /// RFC 9110 §9.2.2.
    var isIdempotent: Bool {
        switch self {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: return true
        default: return false
        }
    }
}

extension IPAddress {
    init?(socketAddress: SocketAddress) {
        switch socketAddress {
        case .v4(let address):
            self = .v4(UInt32(bigEndian: address.address.sin_addr.s_addr))
        case .v6(let address):
            var raw = address.address.sin6_addr
            let bytes = withUnsafeBytes(of: &raw) { Array($0) }
            guard let parsed = IPAddress(bytes: bytes) else { return nil }
            self = parsed
        case .unixDomainSocket:
            return nil
        }
    }
}
