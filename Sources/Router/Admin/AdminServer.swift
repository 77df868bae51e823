import NIOCore
import NIOHTTP1
import NIOPosix
import Shared

/// What the admin endpoints report.
struct AdminStatus: Sendable {
    let configLoaded: Bool
    /// The version the router loaded last.
    let loadedVersion: UInt64
    let draining: Bool
    let workers: [WorkerSupervisor.SlotStatus]

    /// SPEC §9: ready only when every worker is up, a model is loaded and
    /// the router is not draining.
    var isReady: Bool { self.configLoaded && !self.draining && self.workers.allSatisfy { $0.state == .up } }

    /// The version in force everywhere: the oldest one a worker holds. A
    /// reload is complete when this reaches `loadedVersion`.
    var configVersion: UInt64 { self.workers.map(\.configVersion).min() ?? 0 }

    func readinessJSON() -> String {
        let workers = self.workers.map { worker in
            "{\"index\":\(worker.index),\"pid\":\(worker.pid.map { String($0) } ?? "null"),\"state\":\"\(worker.state.rawValue)\",\"restarts\":\(worker.restarts),\"config_version\":\(worker.configVersion)}"
        }
        return "{\"ready\":\(self.isReady),\"draining\":\(self.draining),\"config_version\":\(self.configVersion),\"loaded_version\":\(self.loadedVersion),\"workers\":[\(workers.joined(separator: ","))]}"
    }

    func prometheusText() -> String {
        var out = ""
        out += "# HELP portcullis_ready Whether the gateway is ready for traffic.\n# TYPE portcullis_ready gauge\n"
        out += "portcullis_ready \(self.isReady ? 1 : 0)\n"
        out += "# HELP portcullis_config_version Version of the config model in force.\n# TYPE portcullis_config_version gauge\n"
        out += "portcullis_config_version \(self.configVersion)\n"
        out += "# HELP portcullis_worker_up Whether a worker is up.\n# TYPE portcullis_worker_up gauge\n"
        for worker in self.workers { out += "portcullis_worker_up{worker=\"\(worker.index)\"} \(worker.state == .up ? 1 : 0)\n" }
        out += "# HELP portcullis_worker_restarts_total Worker exits followed by a respawn.\n# TYPE portcullis_worker_restarts_total counter\n"
        for worker in self.workers { out += "portcullis_worker_restarts_total{worker=\"\(worker.index)\"} \(worker.restarts)\n" }
        return out
    }
}

/// `/healthz`, `/readyz` and `/metrics` on the admin port.
enum AdminServer {
    static func bind(group: any EventLoopGroup, address: HostPort, status: @escaping @Sendable () -> AdminStatus) throws -> any Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(status: status))
                }
            }
            .bind(host: address.host, port: address.port)
            .wait()
    }
}

final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let status: @Sendable () -> AdminStatus
    private var head: HTTPRequestHead?

    init(status: @escaping @Sendable () -> AdminStatus) {
        self.status = status
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let (code, type, body): (HTTPResponseStatus, String, String)
        switch (head.method, path) {
        case (.GET, "/healthz"):
            (code, type, body) = (.ok, "application/json", "{\"status\":\"ok\"}")
        case (.GET, "/readyz"):
            let status = self.status()
            (code, type, body) = (status.isReady ? .ok : .serviceUnavailable, "application/json", status.readinessJSON())
        case (.GET, "/metrics"):
            (code, type, body) = (.ok, "text/plain; version=0.0.4", self.status().prometheusText())
        default:
            (code, type, body) = (.notFound, "application/json", "{\"error\":\"not_found\",\"message\":\"no such admin endpoint\"}")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Cache-Control", value: "no-store")
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
        buffer.writeString(body)
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: code, headers: headers))), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
