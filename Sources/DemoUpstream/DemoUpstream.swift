import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// `portcullis-demo-upstream`: a small backend for the demo, the tests and
/// the benchmarks. Paths (after any prefix, so `/orders/status/503` works):
///
///   .../status/<code>   answer with that status
///   .../delay/<ms>      answer after a delay
///   .../drop            close the connection without answering
///   .../stream/<n>      n chunks of a chunked body
///   .../bytes/<n>       n bytes of body
///   .../static          a fixed small JSON body (benchmarks)
///   anything else       JSON echo of the method, path, headers and body size
@main
struct DemoUpstream {
    static func main() throws {
        // A parent may hand us SIGTERM/SIGINT ignored or blocked (both
        // survive exec); the demo upstream must always stop when told to.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &stopSignals, nil)
        signal(SIGTERM, SIG_DFL)
        signal(SIGINT, SIG_DFL)
        let arguments = Array(CommandLine.arguments.dropFirst())
        var host = "127.0.0.1"
        var port = 9000
        var threads = 1
        var raw = false
        var index = 0
        while index < arguments.count {
            switch arguments[index] {
            case "--listen" where index + 1 < arguments.count:
                let value = arguments[index + 1]
                if let colon = value.lastIndex(of: ":"), let parsed = Int(value[value.index(after: colon)...]) {
                    host = String(value[..<colon])
                    port = parsed
                }
                index += 2
            case "--threads" where index + 1 < arguments.count:
                threads = max(1, Int(arguments[index + 1]) ?? 1)
                index += 2
            case "--raw":
                // A fixed response per request, parsed with no HTTP codec:
                // the cheapest possible backend for benchmarks.
                raw = true
                index += 1
            case "--help", "-h":
                print("usage: portcullis-demo-upstream [--listen HOST:PORT] [--threads N] [--raw]")
                return
            default:
                print("unknown argument \(arguments[index])")
                exit(2)
            }
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if raw {
                        try channel.pipeline.syncOperations.addHandler(RawStaticHandler())
                    } else {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                    }
                }
            }
            .bind(host: host, port: port)
            .wait()
        print("demo upstream listening on \(channel.localAddress.map { "\($0)" } ?? "?")")
        fflush(nil)
        try channel.closeFuture.wait()
    }
}

final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var head: HTTPRequestHead?
    private var bodyBytes = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.bodyBytes = 0
        case .body(let body):
            self.bodyBytes += body.readableBytes
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.respond(head, context: context)
        }
    }

    private func respond(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = String(head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
        let segments = path.split(separator: "/").map(String.init)
        func argument(after name: String) -> Int? {
            guard let position = segments.lastIndex(of: name), position + 1 < segments.count else { return nil }
            return Int(segments[position + 1])
        }
        if segments.last == "drop" {
            context.close(promise: nil)
            return
        }
        if let ms = argument(after: "delay") {
            let bound = context.loopBound
            let requestBytes = self.bodyBytes
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(ms))) {
                Self.write(.ok, body: Self.echo(head, bodyBytes: requestBytes), head: head, context: bound.value)
            }
            return
        }
        if let code = argument(after: "status") {
            Self.write(HTTPResponseStatus(statusCode: code), body: "{\"status\":\(code)}", head: head, context: context)
            return
        }
        if let count = argument(after: "bytes") {
            Self.write(.ok, body: String(repeating: "x", count: max(0, min(count, 64 << 20))), head: head, context: context)
            return
        }
        if let chunks = argument(after: "stream") {
            var headers = HTTPHeaders([("Content-Type", "text/plain")])
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            for index in 0..<max(0, min(chunks, 10_000)) {
                var buffer = context.channel.allocator.buffer(capacity: 16)
                buffer.writeString("chunk \(index)\n")
                context.write(Self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            }
            Self.end(head: head, context: context)
            return
        }
        if segments.last == "static" {
            Self.write(.ok, body: "{\"ok\":true}", head: head, context: context)
            return
        }
        Self.write(.ok, body: Self.echo(head, bodyBytes: self.bodyBytes), head: head, context: context)
    }

    private static func echo(_ head: HTTPRequestHead, bodyBytes: Int) -> String {
        var headers: [String] = []
        for (name, value) in head.headers {
            headers.append("[\(quote(name)),\(quote(value))]")
        }
        return "{\"method\":\(quote(head.method.rawValue)),\"path\":\(quote(head.uri)),\"headers\":[\(headers.joined(separator: ","))],\"body_bytes\":\(bodyBytes)}"
    }

    private static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += "\\u00" + String(scalar.value, radix: 16).leftPad(2)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    private static func write(_ status: HTTPResponseStatus, body: String, head: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
        buffer.writeString(body)
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        self.end(head: head, context: context)
    }

    private static func end(head: HTTPRequestHead, context: ChannelHandlerContext) {
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}

extension String {
    fileprivate func leftPad(_ width: Int) -> String {
        String(repeating: "0", count: max(0, width - self.count)) + self
    }
}

/// Answers every request (GET/HEAD without a body) with the same bytes.
final class RawStaticHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let response = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}".utf8)
    private var pending = 0
    private var matched = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        let terminator: [UInt8] = [13, 10, 13, 10]
        for byte in buffer.readableBytesView {
            self.matched = byte == terminator[self.matched] ? self.matched + 1 : (byte == 13 ? 1 : 0)
            if self.matched == 4 {
                self.matched = 0
                self.pending += 1
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard self.pending > 0 else { return }
        var out = context.channel.allocator.buffer(capacity: Self.response.count * self.pending)
        for _ in 0..<self.pending { out.writeBytes(Self.response) }
        self.pending = 0
        context.writeAndFlush(Self.wrapOutboundOut(out), promise: nil)
    }
}
