import NIOCore
import NIOSSL
import NIOTLS
import Shared

/// One client connection, from bytes in to bytes out: parses each request
/// head (HTTPHeadParser), asks the owning worker for a decision, then either
/// answers the refusal itself or proxies to the upstream, passing body bytes
/// through in both directions as zero-copy slices. Pipelined requests wait
/// in the read buffer and are answered in order, one at a time.
///
/// Timeouts (SPEC §9) share one lazily re-armed timer per connection:
/// header read (from accept or the first byte of a request until its head
/// is complete → 408), idle keep-alive (→ close) and the upstream timeout of
/// the current request (connect + response head → 504). A request only moves
/// a deadline; the timer fires at most once per timeout period.
final class ClientConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Bytes held in the read buffer (body awaiting a decision, pipelined
    /// requests) before reading from the socket pauses.
    static let maxBufferedBytes = 256 * 1024
    /// Response bodies up to this size are copied in behind their head and
    /// leave in one write; larger ones go out as the zero-copy slices they
    /// arrived as. A copy of a few KiB is cheaper than a second write
    /// through the pipeline (and `writev` instead of `write`).
    static let coalescedBodyBytes = 16 * 1024

    let loop: LoopContext
    /// On the TLS listener: responses carry HSTS, and a client certificate
    /// verified in the handshake is this connection's mtls identity.
    let tls: Bool
    private var nativeCertificate: CertificateIdentity?
    private var context: ChannelHandlerContext?
    private var inbound: ByteBuffer?
    private var parser: HTTPHeadParser
    private var exchange: Exchange?
    private var peer: IPAddress?
    private var peerTrusted = false
    private var peerText = "unknown"
    private var closing = false
    private var draining = false
    private var processing = false
    private var reprocess = false
    private var readsPaused = false
    private var readPending = false
    private var upstreamNeedsFlush: UpstreamConnection?
    /// Response bytes not yet handed to the channel: the head of a proxied
    /// response and as much of its body as arrived with it.
    private var pendingOut: ByteBuffer?
    private var headerDeadline: NIODeadline?
    private var idleDeadline: NIODeadline?
    private var timer: Scheduled<Void>?
    private var timerAt: NIODeadline?

    init(loop: LoopContext, tls: Bool = false) {
        self.loop = loop
        self.tls = tls
        self.parser = HTTPHeadParser(kind: .request, maxHeadBytes: loop.limits.maxHeaderBytes)
    }

    /// `NIOAny` of a buffer, built where the type is known. The generic
    /// `wrapOutboundOut` was left unspecialised here and settled the type
    /// with dynamic casts: ~500 instructions per response (callgrind).
    @inline(__always)
    static func outbound(_ buffer: ByteBuffer) -> NIOAny { NIOAny(buffer) }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { self.connectionStarted(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        self.connectionStarted(context)
        context.fireChannelActive()
    }

    private func connectionStarted(_ context: ChannelHandlerContext) {
        guard self.peer == nil, let address = context.channel.remoteAddress else { return }
        self.peer = IPAddress(socketAddress: address)
        self.peerText = self.peer?.description ?? "unknown"
        if let peer = self.peer { self.peerTrusted = self.loop.snapshot.trustedProxies.contains(peer) }
        // Slowloris: a new connection must deliver a head within the header timeout.
        self.headerDeadline = .now() + .milliseconds(Int64(self.loop.limits.headerTimeoutMs))
        self.armTimer()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        if self.closing { return }
        if self.inbound == nil || self.inbound!.readableBytes == 0 {
            self.inbound = buffer
        } else {
            self.inbound!.writeBuffer(&buffer)
        }
        if self.exchange == nil, self.headerDeadline == nil {
            self.headerDeadline = .now() + .milliseconds(Int64(self.loop.limits.headerTimeoutMs))
            self.idleDeadline = nil
            self.armTimer()
        }
        self.process()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.flushUpstream()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The client cannot take more: stop reading the upstream until it can.
        self.exchange?.upstream?.handler.setReadsPaused(!context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.closing = true
        self.timer?.cancel()
        self.timer = nil
        if let exchange = self.exchange {
            self.exchange = nil
            exchange.abandon()
            if !exchange.responseStarted { self.log(exchange, status: 499, reason: "client_closed") }
        }
        self.inbound = nil
        self.pendingOut = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Socket errors (reset by peer and the like): nothing to answer.
        self.close()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            self.nativeCertificate = TLSListener.peerIdentity(context.pipeline)
        }
        if event is ChannelShouldQuiesceEvent {
            self.draining = true
            if self.exchange == nil { self.close() }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func read(context: ChannelHandlerContext) {
        if self.readsPaused {
            self.readPending = true
        } else {
            context.read()
        }
    }

    // MARK: the request loop

    /// Works through what is buffered: the current request's body, then,
    /// once its response is done, the next pipelined request.
    private func process() {
        // Answers given while processing (a refused head, a local error)
        // ask to process again; doing that in this loop, not by recursion,
        // keeps a burst of pipelined requests from deepening the stack.
        if self.processing {
            self.reprocess = true
            return
        }
        self.processing = true
        defer { self.processing = false }
        repeat {
            self.reprocess = false
            self.processOnce()
        } while self.reprocess && !self.closing
        self.adjustReads()
    }

    private func processOnce() {
        while !self.closing {
            if let exchange = self.exchange {
                if !exchange.requestComplete && exchange.canTakeBody {
                    guard self.readBody(exchange) else { return }
                }
                if exchange.requestComplete && exchange.responseComplete {
                    self.complete(exchange)
                    continue
                }
                break
            }
            guard let buffer = self.inbound, buffer.readableBytes > 0 else { break }
            if self.draining {
                self.close()
                return
            }
            switch self.parser.parse(buffer) {
            case .needMore:
                break
            case .invalid(let error):
                self.refuseHead(error)
                return
            case .head(let head, let consumed):
                self.inbound!.moveReaderIndex(forwardBy: consumed)
                self.headerDeadline = nil
                self.begin(head)
                continue
            }
            break
        }
    }

    /// Moves body bytes from the read buffer to the upstream (or drops them
    /// after a local answer). False when the connection was closed.
    private func readBody(_ exchange: Exchange) -> Bool {
        guard var buffer = self.inbound else {
            if exchange.body.isFinished { exchange.requestComplete = true }
            return true
        }
        let outcome = exchange.body.read(from: &buffer)
        self.inbound = buffer
        switch outcome {
        case .invalid:
            // The request's framing broke: the stream cannot be trusted past here.
            exchange.closeUpstream()
            if exchange.responseStarted {
                self.close()
            } else {
                exchange.keepAlive = false
                self.respondLocally(exchange, GatewayError(400, .badRequest, .malformedRequest, "malformed chunked body", closeConnection: true))
            }
            return false
        case .bytes(let slice, let finished):
            if exchange.body.bodyBytes > self.loop.snapshot.maxBodyBytes {
                // Never hand an oversized body on: the upstream request is cut
                // off mid-body, so the upstream cannot take it as complete.
                exchange.closeUpstream()
                if exchange.responseStarted {
                    self.close()
                } else {
                    self.respondLocally(exchange, .bodyTooLarge)
                }
                return false
            }
            if exchange.phase == .proxying, let upstream = exchange.upstream {
                slice.forEachPart { part in
                    upstream.handler.send(part)
                    exchange.bodySent = true
                }
                self.upstreamNeedsFlush = upstream
            }
            if finished { exchange.requestComplete = true }
            return true
        }
    }

    private func complete(_ exchange: Exchange) {
        self.exchange = nil
        self.parser.reset()
        if !exchange.keepAlive || self.draining {
            self.close()
            return
        }
        self.idleDeadline = .now() + .milliseconds(Int64(self.loop.limits.idleTimeoutMs))
        self.armTimer()
    }

    private func adjustReads() {
        var pause = (self.inbound?.readableBytes ?? 0) > Self.maxBufferedBytes
        if let exchange = self.exchange, exchange.phase == .proxying, !exchange.requestComplete,
            let upstream = exchange.upstream, !upstream.channel.isWritable
        {
            pause = true
        }
        self.setReadsPaused(pause)
    }

    private func setReadsPaused(_ paused: Bool) {
        guard paused != self.readsPaused else { return }
        self.readsPaused = paused
        if !paused, self.readPending, let context = self.context {
            self.readPending = false
            context.read()
        }
    }

    private func flushUpstream() {
        if let upstream = self.upstreamNeedsFlush {
            self.upstreamNeedsFlush = nil
            upstream.handler.flush()
        }
    }

    // MARK: a new request

    private func begin(_ head: HTTPHead) {
        let identity = RequestIdentity(head)
        let requestID = self.requestID(identity, in: head)
        let worker = head.withBytes(.head(identity.clientID)) { self.loop.ring.worker(for: $0) }
        let exchange = Exchange(handler: self, head: head, identity: identity, requestID: requestID, worker: worker)
        self.exchange = exchange

        switch head.requestFraming() {
        case .success(let framing):
            exchange.body = BodyReader(framing)
            if case .length(let length) = framing, length > self.loop.snapshot.maxBodyBytes {
                return self.respondLocally(exchange, .bodyTooLarge)
            }
        case .failure(.unsupportedCoding):
            exchange.keepAlive = false
            return self.respondLocally(
                exchange, GatewayError(501, .badRequest, .malformedRequest, "only the chunked transfer coding is supported", closeConnection: true))
        case .failure(.malformed(let why)):
            exchange.keepAlive = false
            return self.respondLocally(exchange, GatewayError(400, .badRequest, .malformedRequest, why, closeConnection: true))
        }
        exchange.requestComplete = exchange.body.isFinished
        if let name = identity.duplicate {
            return self.respondLocally(exchange, GatewayError(400, .badRequest, .malformedRequest, "\(name) sent more than once"))
        }
        guard let target = RequestTarget.originForm(of: head), !head.withBytes(target, RequestTarget.hasDotSegment) else {
            return self.respondLocally(exchange, GatewayError(400, .badRequest, .malformedRequest, "request target must be a plain absolute path"))
        }
        exchange.target = target

        var sourceIP = self.peer
        if self.peerTrusted, let peer = self.peer, !identity.forwardedFor.isEmpty {
            let values = identity.forwardedForValues(in: head)
            switch ForwardedFor.clientAddress(peer: peer, headerValues: values, trusted: self.loop.snapshot.trustedProxies) {
            case .address(let address): sourceIP = address
            case .unknown: sourceIP = nil
            }
        }
        // A certificate verified in our own handshake wins; otherwise what
        // a trusted ingress proxy vouches for.
        let certificate = self.nativeCertificate ?? identity.certificate(trusted: self.peerTrusted, in: head)
        guard let callID = self.ask(worker, exchange, identity, target: target, sourceIP: sourceIP, certificate: certificate) else {
            return self.respondLocally(exchange, .workerUnavailable())
        }
        exchange.callID = callID
    }

    /// The client's X-Request-ID when acceptable (SPEC §9), else a new one.
    private func requestID(_ identity: RequestIdentity, in head: HTTPHead) -> RequestID {
        if let range = identity.requestID, head.withBytes(.head(range), RequestIDGenerator.isAcceptable) {
            return .given(head.string(range))
        }
        return self.loop.requestIDs.make()
    }

    /// Sends the decision request, packed straight from the head's bytes.
    private func ask(
        _ worker: Int, _ exchange: Exchange, _ identity: RequestIdentity, target: HeadText, sourceIP: IPAddress?,
        certificate: CertificateIdentity?
    ) -> UInt64? {
        let head = exchange.head
        return head.bytes.withUnsafeReadableBytes { raw -> UInt64? in
            func view(_ range: Range<Int>) -> UnsafeRawBufferPointer {
                range.upperBound <= raw.count ? UnsafeRawBufferPointer(rebasing: raw[range]) : UnsafeRawBufferPointer(start: nil, count: 0)
            }
            let method: Range<Int>
            if case .request(let range, _) = head.startLine { method = range } else { method = 0..<0 }
            return head.withBytes(target) { path in
                var subject = certificate?.subject ?? ""
                var fingerprint = certificate?.fingerprint ?? ""
                return subject.withUTF8 { subject in
                    fingerprint.withUTF8 { fingerprint in
                        self.loop.links[worker].decide(
                            DecisionRequestBytes(
                                clientID: view(identity.clientID), profileID: view(identity.profileID), method: view(method),
                                path: path, authorization: view(identity.authorization),
                                certSubject: UnsafeRawBufferPointer(subject), certFingerprint: UnsafeRawBufferPointer(fingerprint),
                                sourceIP: sourceIP),
                            waiter: exchange)
                    }
                }
            }
        }
    }

    private func refuseHead(_ error: HTTPHeadError) {
        let refusal: GatewayError
        switch error {
        case .tooLarge: refusal = .headersTooLarge
        case .unsupportedVersion:
            refusal = GatewayError(505, .badRequest, .malformedRequest, "only HTTP/1.0 and HTTP/1.1 are supported", closeConnection: true)
        case .malformed(let why): refusal = GatewayError(400, .badRequest, .malformedRequest, "malformed request: \(why)", closeConnection: true)
        }
        let requestID = self.loop.requestIDs.make()
        self.writeLocal(refusal, requestID: requestID, minorVersion: 1, rateLimitPolicy: "", rateLimit: nil, close: true)
        self.logRefusal(
            DecisionRecord(
                unixMillis: WallClock.nowMillis(), requestID: requestID.string, clientID: "", profileID: "", authType: "", policyID: "",
                collection: "", method: "", path: "", status: refusal.status, reason: refusal.reason, worker: -1, latencyMicros: 0))
        self.close()
    }

    // MARK: decision

    fileprivate func decisionArrived(_ exchange: Exchange, _ response: DecisionResponse) {
        guard exchange === self.exchange, exchange.phase == .deciding else { return }
        exchange.callID = 0
        exchange.decision = response
        self.loop.metrics.decided(nanoseconds: (NIODeadline.now() - exchange.startedAt).nanoseconds)
        switch response.outcome {
        case .allow:
            self.allow(exchange, response)
        case .deny, .unavailable:
            var refusal = GatewayError(
                status: response.status, code: ErrorCode(rawValue: response.errorCode) ?? .forbidden, reason: response.reason,
                message: response.message, retryAfterSeconds: response.retryAfterSeconds > 0 ? response.retryAfterSeconds : nil,
                allow: response.status == 405 ? response.allow : nil)
            // The client waits to be told to send its body and will not be;
            // whether it sends it anyway is unknowable, so the connection ends.
            if exchange.expectsContinue && !exchange.requestComplete { refusal.closeConnection = true }
            self.respondLocally(exchange, refusal)
        }
    }

    fileprivate func decisionFailed(_ exchange: Exchange, _ error: GatewayError) {
        guard exchange === self.exchange, exchange.phase == .deciding else { return }
        exchange.callID = 0
        self.respondLocally(exchange, error)
    }

    private func allow(_ exchange: Exchange, _ response: DecisionResponse) {
        guard let route = self.loop.route(response.collectionID) else {
            return self.respondLocally(exchange, .badGateway(.unknownCollection, "collection \(response.collectionID) has no upstream"))
        }
        if let credential = route.credential, let why = credential.unavailable {
            self.loop.logger.error(
                "backend credential unavailable; request refused",
                metadata: ["collection": "\(route.collectionID)", "reason": "\(why)", "request_id": "\(exchange.requestID.string)"])
            return self.respondLocally(
                exchange,
                GatewayError(500, .credentialUnavailable, .credentialUnavailable, "the backend credential of collection \(route.collectionID) is unavailable"))
        }
        exchange.route = route
        exchange.stripPrefixBytes = response.stripPrefixBytes
        if exchange.expectsContinue && !exchange.requestComplete {
            var interim = self.context?.channel.allocator.buffer(capacity: 32) ?? ByteBuffer()
            interim.writeStaticString(exchange.head.minorVersion == 0 ? "HTTP/1.0 100 Continue\r\n\r\n" : "HTTP/1.1 100 Continue\r\n\r\n")
            self.context?.writeAndFlush(Self.wrapOutboundOut(interim), promise: nil)
        }
        exchange.upstreamStartedAt = .now()
        exchange.upstreamDeadline = exchange.upstreamStartedAt + .milliseconds(Int64(route.timeoutMs))
        self.armTimer()
        self.connectUpstream(exchange, route: route)
    }

    private func connectUpstream(_ exchange: Exchange, route: UpstreamRoute) {
        let key = route.poolKey
        if let connection = self.loop.upstreams.takeIdle(key) {
            self.attach(exchange, connection, reused: true)
            return
        }
        exchange.phase = .connecting
        self.loop.upstreams.connect(key, timeout: .milliseconds(Int64(route.timeoutMs))).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let connection):
                guard exchange === self.exchange, exchange.phase == .connecting else {
                    // Answered meanwhile (timeout, client gone): keep it for the next request.
                    self.loop.upstreams.release(connection)
                    return
                }
                self.attach(exchange, connection, reused: false)
            case .failure(let error):
                guard exchange === self.exchange, exchange.phase == .connecting else { return }
                if case ChannelError.connectTimeout = error {
                    self.respondLocally(exchange, .upstreamTimeout)
                } else {
                    self.respondLocally(exchange, .badGateway(.upstreamRefused, "the upstream refused the connection"))
                }
            }
        }
    }

    private func attach(_ exchange: Exchange, _ connection: UpstreamConnection, reused: Bool) {
        guard let context = self.context, let route = exchange.route else { return }
        exchange.phase = .proxying
        exchange.upstream = connection
        exchange.upstreamReused = reused
        // An HTTP/1.0 client cannot read chunked framing: unwrap it.
        connection.handler.expectResponse(to: exchange, isHEAD: exchange.isHEAD, dechunk: exchange.head.minorVersion == 0)
        connection.handler.setReadsPaused(!context.channel.isWritable)
        var head = connection.channel.allocator.buffer(capacity: exchange.head.bytes.readableBytes + 384)
        HeadWriter.upstreamRequest(
            exchange.head, target: UpstreamTarget(path: exchange.target, stripPrefixBytes: exchange.stripPrefixBytes), route: route,
            identity: ForwardingIdentity(
                requestID: exchange.requestID, clientID: .head(exchange.clientIDRange),
                profileID: .head(exchange.profileIDRange), peer: self.peer,
                peerTrusted: self.peerTrusted, peerText: self.peerText),
            into: &head)
        if exchange.requestComplete {
            // Nothing follows the head: one trip down the pipeline, not two.
            connection.handler.sendAndFlush(head)
        } else {
            connection.handler.send(head)
            self.upstreamNeedsFlush = connection
        }
        // Body bytes that arrived while deciding are still in the read buffer.
        self.process()
        self.flushUpstream()
    }

    // MARK: upstream events

    fileprivate func upstreamHead(_ exchange: Exchange, _ head: HTTPHead, framing: BodyFraming) {
        guard exchange === self.exchange, let context = self.context else { return }
        exchange.upstreamDeadline = nil
        exchange.responseStarted = true
        exchange.responseStatus = head.status
        if let route = exchange.route {
            self.loop.metrics.upstreamAnswered(
                collection: route.collectionID, nanoseconds: (NIODeadline.now() - exchange.upstreamStartedAt).nanoseconds)
        }
        let dechunk = framing == .chunked && exchange.head.minorVersion == 0
        if framing == .untilClose || dechunk { exchange.keepAlive = false }
        let connection: HeadWriter.ConnectionHeader =
            !exchange.keepAlive ? .close : (exchange.head.minorVersion == 0 ? .keepAlive : .none)
        // Room for a small body too: it is copied in behind the head, so
        // the response leaves in one write (see `pendingOut`).
        var bodyRoom = 0
        if case .length(let length) = framing, length <= Self.coalescedBodyBytes { bodyRoom = length }
        var out = context.channel.allocator.buffer(capacity: head.rewrittenBound + 256 + bodyRoom)
        HeadWriter.clientResponse(
            head, clientMinorVersion: exchange.head.minorVersion, requestID: exchange.requestID,
            rateLimitPolicy: exchange.decision?.rateLimitPolicy ?? "", rateLimit: exchange.decision?.rateLimit,
            dropTransferEncoding: dechunk, connection: connection, hsts: self.tls, into: &out)
        self.writePendingOut(context)
        self.pendingOut = out
    }

    fileprivate func upstreamBody(_ exchange: Exchange, _ body: ByteBufferSlice) {
        guard exchange === self.exchange, let context = self.context else { return }
        body.forEachPart { part in
            // The bound leaves 4 KiB for the head in front of the body.
            if var pending = self.pendingOut, pending.readableBytes + part.readableBytes <= Self.coalescedBodyBytes + 4096 {
                self.pendingOut = nil  // unique while appending
                var part = part
                pending.writeBuffer(&part)
                self.pendingOut = pending
            } else {
                self.writePendingOut(context)
                context.write(Self.outbound(part), promise: nil)
            }
        }
    }

    /// Hands what `upstreamHead` and `upstreamBody` gathered to the channel.
    private func writePendingOut(_ context: ChannelHandlerContext) {
        guard let pending = self.pendingOut else { return }
        self.pendingOut = nil
        context.write(Self.outbound(pending), promise: nil)
    }

    /// The same, flushed: a single pass down the pipeline when something
    /// was gathered.
    private func flushPendingOut(_ context: ChannelHandlerContext) {
        if let pending = self.pendingOut {
            self.pendingOut = nil
            context.writeAndFlush(Self.outbound(pending), promise: nil)
        } else {
            context.flush()
        }
    }

    fileprivate func upstreamReadComplete(_ exchange: Exchange) {
        guard exchange === self.exchange, let context = self.context else { return }
        self.flushPendingOut(context)
        if !context.channel.isWritable { exchange.upstream?.handler.setReadsPaused(true) }
    }

    fileprivate func upstreamEnd(_ exchange: Exchange, reusable: Bool) {
        guard exchange === self.exchange, let upstream = exchange.upstream else { return }
        exchange.upstream = nil
        // Reusable only if the upstream got the whole request and framed its
        // answer so that nothing of it can still be in flight.
        if reusable && exchange.requestComplete {
            self.loop.upstreams.release(upstream)
        } else {
            upstream.handler.detach()
            upstream.channel.close(promise: nil)
        }
        exchange.responseComplete = true
        exchange.phase = .responded
        self.log(exchange, status: exchange.responseStatus, reason: ReasonCode.allowed.rawValue)
        if let context = self.context { self.flushPendingOut(context) }
        self.process()
    }

    fileprivate func upstreamWritability(_ exchange: Exchange) {
        guard exchange === self.exchange else { return }
        self.adjustReads()
    }

    fileprivate func upstreamFailed(_ exchange: Exchange, _ failure: UpstreamFailure) {
        guard exchange === self.exchange else { return }
        exchange.closeUpstream()
        if exchange.responseStarted {
            // Part of the response is out; the honest signal left is to cut
            // the connection so the client sees a truncated response.
            self.exchange = nil
            self.log(exchange, status: exchange.responseStatus, reason: ReasonCode.upstreamReset.rawValue)
            self.close()
            return
        }
        // A pooled connection the upstream had just closed: retry once when
        // nothing of the request can have been acted on.
        if exchange.upstreamReused, !exchange.retried, failure == .closed, exchange.requestComplete, !exchange.bodySent,
            exchange.isIdempotent, let route = exchange.route
        {
            exchange.retried = true
            exchange.phase = .connecting
            self.connectUpstream(exchange, route: route)
            return
        }
        switch failure {
        case .malformed:
            self.respondLocally(exchange, .badGateway(.upstreamMalformed, "the upstream sent a malformed response"))
        case .closed, .other:
            self.respondLocally(exchange, .badGateway(.upstreamReset, "the upstream closed the connection without a response"))
        }
    }

    // MARK: answering

    private func respondLocally(_ exchange: Exchange, _ error: GatewayError) {
        guard exchange === self.exchange else { return }
        exchange.cancelDecision(in: self.loop)
        exchange.closeUpstream()
        exchange.upstreamDeadline = nil
        exchange.phase = .responded
        exchange.responseStarted = true
        exchange.responseComplete = true
        if error.closeConnection { exchange.keepAlive = false }
        let connection = !exchange.keepAlive || self.draining
        self.writeLocal(
            error, requestID: exchange.requestID, minorVersion: exchange.head.minorVersion,
            rateLimitPolicy: exchange.decision?.rateLimitPolicy ?? "", rateLimit: exchange.decision?.rateLimit,
            close: connection, keepAliveHeader: exchange.head.minorVersion == 0 && !connection)
        self.log(exchange, status: error.status, reason: error.reason)
        if connection {
            self.exchange = nil
            self.close()
            return
        }
        // The rest of the body, if any, is read and dropped by `process`.
        self.process()
    }

    private func writeLocal(
        _ error: GatewayError, requestID: RequestID, minorVersion: Int, rateLimitPolicy: String, rateLimit: RateLimitValue?, close: Bool,
        keepAliveHeader: Bool = false
    ) {
        guard let context = self.context else { return }
        self.writePendingOut(context)
        var out = context.channel.allocator.buffer(capacity: 512)
        HeadWriter.localResponse(
            error, requestID: requestID, clientMinorVersion: minorVersion, rateLimitPolicy: rateLimitPolicy, rateLimit: rateLimit,
            connection: close ? .close : (keepAliveHeader ? .keepAlive : .none), hsts: self.tls, into: &out)
        context.writeAndFlush(Self.outbound(out), promise: nil)
    }

    /// Closes after what is written has been flushed.
    private func close() {
        guard !self.closing, let context = self.context else { return }
        self.closing = true
        self.timer?.cancel()
        self.timer = nil
        if let exchange = self.exchange {
            self.exchange = nil
            exchange.abandon()
        }
        self.setReadsPaused(false)
        self.writePendingOut(context)
        context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer())).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// Every answered request passes here once: the metrics and the decision log.
    private func log(_ exchange: Exchange, status: Int, reason: String) {
        let elapsed = NIODeadline.now() - exchange.startedAt
        self.loop.metrics.answered(status: status, reason: reason, nanoseconds: elapsed.nanoseconds)
        let decision = exchange.decision
        if status >= 500 {
            // What an operator pages on goes to the error stream too, with
            // the request id that ties it to the decision log and upstream logs.
            self.loop.logger.warning(
                "request failed",
                metadata: [
                    "request_id": "\(exchange.requestID.string)", "status": "\(status)", "reason": "\(reason)",
                    "client_id": "\(exchange.clientID)",
                    "collection": "\(decision?.collectionID ?? "")", "worker": "\(exchange.worker)",
                ])
        }
        guard self.loop.decisionLog.isEnabled else { return }
        self.loop.decisionLog.append(
            DecisionRecord(
                unixMillis: WallClock.nowMillis(), requestID: exchange.requestID.string, clientID: exchange.clientID,
                profileID: exchange.profileID, authType: decision?.authType ?? "", policyID: decision?.policyID ?? "",
                collection: decision?.collectionID ?? "", method: exchange.method, path: exchange.head.string(exchange.target),
                status: status,
                reason: reason, worker: exchange.worker, latencyMicros: elapsed.nanoseconds / 1000))
    }

    /// A request refused before it became an exchange (bad head, header timeout).
    private func logRefusal(_ record: DecisionRecord) {
        self.loop.metrics.answered(status: record.status, reason: record.reason, nanoseconds: 0)
        self.loop.decisionLog.append(record)
    }

    // MARK: deadlines

    private func armTimer() {
        guard !self.closing else { return }
        var next = self.headerDeadline ?? self.idleDeadline
        if let idle = self.idleDeadline, let current = next { next = min(current, idle) }
        if let upstream = self.exchange?.upstreamDeadline { next = next.map { min($0, upstream) } ?? upstream }
        guard let next else { return }
        if let at = self.timerAt, self.timer != nil, at <= next { return }
        self.timer?.cancel()
        self.timerAt = next
        // A strong capture: a weak one would give the handler a side table
        // and slow every retain of it. The timer is cancelled on close and
        // on channelInactive, so it never outlives the connection for long.
        self.timer = self.loop.eventLoop.assumeIsolated().scheduleTask(deadline: next) {
            self.timerFired()
        }
    }

    private func timerFired() {
        self.timer = nil
        self.timerAt = nil
        guard !self.closing else { return }
        let now = NIODeadline.now()
        if let deadline = self.headerDeadline, deadline <= now, self.exchange == nil {
            let requestID = self.loop.requestIDs.make()
            self.writeLocal(.headerTimeout, requestID: requestID, minorVersion: 1, rateLimitPolicy: "", rateLimit: nil, close: true)
            self.logRefusal(
                DecisionRecord(
                    unixMillis: WallClock.nowMillis(), requestID: requestID.string, clientID: "", profileID: "", authType: "",
                    policyID: "", collection: "", method: "", path: "", status: 408, reason: ReasonCode.headerTimeout.rawValue,
                    worker: -1, latencyMicros: 0))
            self.close()
            return
        }
        if let deadline = self.idleDeadline, deadline <= now, self.exchange == nil {
            self.close()
            return
        }
        if let exchange = self.exchange, let deadline = exchange.upstreamDeadline, deadline <= now, !exchange.responseStarted {
            exchange.upstreamDeadline = nil
            self.respondLocally(exchange, .upstreamTimeout)
        }
        self.armTimer()
    }
}

/// One request's state, from its head to the end of its response.
final class Exchange: DecisionWaiter, UpstreamDelegate {
    enum Phase {
        case deciding
        case connecting
        case proxying
        /// The response is complete (proxied or local); what remains of the
        /// request body is read and dropped.
        case responded
    }

    private unowned let handler: ClientConnectionHandler
    let head: HTTPHead
    /// Offsets of X-Client-ID and X-Profile-ID in the head: all the
    /// exchange keeps of `RequestIdentity` (whose arrays would cost
    /// reference counting on every copy of it).
    let clientIDRange: Range<Int>
    let profileIDRange: Range<Int>
    let expectsContinue: Bool
    let requestID: RequestID
    let worker: Int
    let startedAt = NIODeadline.now()
    var keepAlive: Bool
    /// The origin-form target: offsets in the head, or the path of an
    /// absolute-form target.
    var target = HeadText.empty
    var stripPrefixBytes = 0
    var phase = Phase.deciding
    var body = BodyReader(.none)
    var requestComplete = false
    var responseStarted = false
    var responseComplete = false
    var responseStatus = 0
    var callID: UInt64 = 0
    var decision: DecisionResponse?
    var route: UpstreamRoute?
    var upstream: UpstreamConnection?
    var upstreamReused = false
    var upstreamDeadline: NIODeadline?
    var upstreamStartedAt = NIODeadline.uptimeNanoseconds(0)
    var retried = false
    var bodySent = false

    init(handler: ClientConnectionHandler, head: HTTPHead, identity: RequestIdentity, requestID: RequestID, worker: Int) {
        self.handler = handler
        self.head = head
        self.clientIDRange = identity.clientID
        self.profileIDRange = identity.profileID
        self.expectsContinue = identity.expectsContinue
        self.requestID = requestID
        self.worker = worker
        self.keepAlive = head.keepAlive
    }

    // Strings for logs only: made when a line is written, not per request.
    var clientID: String { self.head.string(self.clientIDRange) }
    var profileID: String { self.head.string(self.profileIDRange) }
    var method: String { self.head.method }

    var isHEAD: Bool { self.methodIs("HEAD") }

    /// RFC 9110 §9.2.2.
    var isIdempotent: Bool {
        self.methodIs("GET") || self.methodIs("HEAD") || self.methodIs("PUT") || self.methodIs("DELETE")
            || self.methodIs("OPTIONS") || self.methodIs("TRACE")
    }

    private func methodIs(_ name: StaticString) -> Bool {
        guard case .request(let method, _) = self.head.startLine else { return false }
        return self.head.withBytes(.head(method)) { bytes in
            bytes.elementsEqual(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        }
    }

    /// Body bytes can be taken off the read buffer: forwarded while
    /// proxying, dropped once answered. While deciding or connecting they
    /// wait in the buffer.
    var canTakeBody: Bool { self.phase == .proxying || self.phase == .responded }

    func cancelDecision(in loop: LoopContext) {
        if self.callID != 0 {
            loop.links[self.worker].cancel(self.callID)
            self.callID = 0
        }
    }

    /// Drops the upstream connection without pooling it: it is mid-exchange
    /// and its next bytes would belong to this request.
    func closeUpstream() {
        guard let upstream = self.upstream else { return }
        self.upstream = nil
        upstream.handler.detach()
        upstream.channel.close(promise: nil)
    }

    /// The client went away: stop everything this request started.
    func abandon() {
        self.cancelDecision(in: self.handler.loop)
        self.closeUpstream()
        self.upstreamDeadline = nil
    }

    func decisionArrived(_ response: DecisionResponse, callID: UInt64) { self.handler.decisionArrived(self, response) }
    func decisionFailed(_ error: GatewayError, callID: UInt64) { self.handler.decisionFailed(self, error) }
    func upstreamResponseHead(_ head: HTTPHead, framing: BodyFraming) { self.handler.upstreamHead(self, head, framing: framing) }
    func upstreamResponseBody(_ body: ByteBufferSlice) { self.handler.upstreamBody(self, body) }
    func upstreamResponseEnd(reusable: Bool) { self.handler.upstreamEnd(self, reusable: reusable) }
    func upstreamReadComplete() { self.handler.upstreamReadComplete(self) }
    func upstreamFailed(_ failure: UpstreamFailure) { self.handler.upstreamFailed(self, failure) }
    func upstreamWritabilityChanged(isWritable: Bool) { self.handler.upstreamWritability(self) }
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
