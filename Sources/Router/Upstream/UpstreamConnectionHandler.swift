import NIOCore

/// One upstream connection: reads the response to the request written on
/// it, with the same strict head parser as the client side, and hands the
/// head and the body bytes to the request that owns it. Interim 1xx
/// responses are skipped; a 101 (upgrade) is not supported and fails the
/// request. Bytes arriving when no request is out mean the upstream broke
/// HTTP framing, and the connection is dropped.
final class UpstreamConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let maxResponseHeadBytes = 64 * 1024

    private enum State {
        case idle
        case awaitingHead(isHEAD: Bool, dechunk: Bool)
        case body(BodyReader, dechunk: Bool, keepAlive: Bool)
    }

    // No weak references here: a weak reference gives its target a side
    // table, which made every retain and release of the per-request
    // `Exchange` take the slow path. Both are strong. The delegate is
    // cleared on every way a response ends (end, failure, close, `detach`).
    // The pool is kept alive by its idle connections until they close,
    // which also takes them out of its lists, so nothing outlives the
    // channels.
    var pool: UpstreamPool?
    private var delegate: (any UpstreamDelegate)?
    private var state = State.idle
    private var inbound: ByteBuffer?
    private var parser = HTTPHeadParser(kind: .response, maxHeadBytes: maxResponseHeadBytes)
    private var context: ChannelHandlerContext?
    private var readsPaused = false
    private var readPending = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func expectResponse(to delegate: any UpstreamDelegate, isHEAD: Bool, dechunk: Bool) {
        self.delegate = delegate
        self.state = .awaitingHead(isHEAD: isHEAD, dechunk: dechunk)
        self.parser.reset()
    }

    /// Request bytes for the upstream, written through this handler's
    /// context: `NIOAny` is made here with the buffer's type known (the
    /// channel's generic `write` settles it with dynamic casts), and the
    /// write starts below this handler rather than at the pipeline's tail.
    func send(_ buffer: ByteBuffer) {
        self.context?.write(NIOAny(buffer), promise: nil)
    }

    func flush() {
        self.context?.flush()
    }

    func sendAndFlush(_ buffer: ByteBuffer) {
        self.context?.writeAndFlush(NIOAny(buffer), promise: nil)
    }

    /// Forget the owner (the connection is being pooled or closed).
    func detach() {
        self.delegate = nil
        self.state = .idle
        self.setReadsPaused(false)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        if self.inbound == nil || self.inbound!.readableBytes == 0 {
            self.inbound = buffer
        } else {
            self.inbound!.writeBuffer(&buffer)
        }
        self.process(context: context)
    }

    private func process(context: ChannelHandlerContext) {
        while var buffer = self.inbound, buffer.readableBytes > 0 || self.bodyIsEmptyAndPending {
            switch self.state {
            case .idle:
                // Nobody asked: the upstream is talking out of turn.
                self.inbound = nil
                context.close(promise: nil)
                return
            case .awaitingHead(let isHEAD, let dechunk):
                switch self.parser.parse(buffer) {
                case .needMore:
                    return
                case .invalid(let error):
                    self.fail(.malformed("\(error)"), context: context)
                    return
                case .head(let head, let consumed):
                    self.inbound!.moveReaderIndex(forwardBy: consumed)
                    self.parser.reset()
                    let status = head.status
                    if status == 101 {
                        self.fail(.malformed("protocol upgrade is not supported"), context: context)
                        return
                    }
                    if status < 200 { continue }  // interim response: wait for the final one
                    let framing: BodyFraming
                    switch head.responseFraming(requestMethodIsHEAD: isHEAD) {
                    case .success(let value): framing = value
                    case .failure(let error):
                        self.fail(.malformed("\(error)"), context: context)
                        return
                    }
                    self.state = .body(BodyReader(framing), dechunk: dechunk, keepAlive: head.keepAlive)
                    self.delegate?.upstreamResponseHead(head, framing: framing)
                }
            case .body(var reader, let dechunk, let keepAlive):
                let outcome = reader.read(from: &buffer, dataOnly: dechunk)
                self.inbound = buffer
                switch outcome {
                case .invalid(let reason):
                    self.fail(.malformed(reason), context: context)
                    return
                case .bytes(let slice, let finished):
                    self.state = .body(reader, dechunk: dechunk, keepAlive: keepAlive)
                    if !slice.isEmpty { self.delegate?.upstreamResponseBody(slice) }
                    guard finished else { return }
                    // Anything after the response is the upstream breaking framing.
                    let clean = (self.inbound?.readableBytes ?? 0) == 0
                    let delegate = self.delegate
                    self.delegate = nil
                    self.state = .idle
                    if !clean {
                        self.inbound = nil
                        context.close(promise: nil)
                    }
                    delegate?.upstreamResponseEnd(reusable: keepAlive && clean)
                    return
                }
            }
        }
    }

    /// A bodiless response (HEAD, 204, 304, Content-Length: 0) ends as soon
    /// as its head is parsed, with no bytes left to read.
    private var bodyIsEmptyAndPending: Bool {
        if case .body(let reader, _, _) = self.state { return reader.isFinished }
        return false
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .body(let reader, _, _) = self.state, reader.mode == .untilClose, let delegate = self.delegate {
            // A close-delimited body ends here, completely.
            self.delegate = nil
            self.state = .idle
            delegate.upstreamResponseEnd(reusable: false)
        } else if let delegate = self.delegate {
            self.delegate = nil
            self.state = .idle
            delegate.upstreamFailed(.closed)
        } else {
            self.pool?.idleConnectionClosed(self)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(.other("\(error)"), context: context)
    }

    private func fail(_ failure: UpstreamFailure, context: ChannelHandlerContext) {
        let delegate = self.delegate
        self.delegate = nil
        self.state = .idle
        self.inbound = nil
        context.close(promise: nil)
        delegate?.upstreamFailed(failure)
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
