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
    /// The Redis that shares quotas (password hidden), nil when local.
    var redis: String? = nil
    /// Every OIDC key source: when its keys were last fetched, and why the
    /// last attempt failed, if it did.
    var oidc: [KeySetService.SourceStatus] = []
    /// MongoDB, when the model lives there.
    var store: MongoConfigSource.Status? = nil

    /// "local" without Redis; otherwise "up" only when every worker's last
    /// sync succeeded, "down" when any failed, "connecting" before the first.
    /// Redis down does not make the gateway unready: it keeps serving (SPEC §5).
    var quotaSync: String {
        guard self.redis != nil else { return "local" }
        let states = self.workers.map { $0.quota?.quotaHealth ?? "connecting" }
        if states.contains("down") { return "down" }
        if states.contains("connecting") { return "connecting" }
        return "up"
    }
    var quotaUnsynced: Int { self.workers.reduce(0) { $0 + ($1.quota?.quotaUnsynced ?? 0) } }

    /// SPEC §9: ready only when every worker is up, a model is loaded and
    /// the router is not draining.
    var isReady: Bool { self.configLoaded && !self.draining && self.workers.allSatisfy { $0.state == .up } }

    /// The version in force everywhere: the oldest one a worker holds. A
    /// reload is complete when this reaches `loadedVersion`.
    var configVersion: UInt64 { self.workers.map(\.configVersion).min() ?? 0 }

    func readinessJSON() -> String {
        let workers = self.workers.map { worker in
            var quota = "null"
            if let q = worker.quota {
                var error = ""
                JSON.appendString(q.quotaLastError, to: &error)
                quota =
                    "{\"health\":\"\(q.quotaHealth)\",\"accounts\":\(q.quotaAccounts),\"unsynced\":\(q.quotaUnsynced),\"batches\":\(q.quotaBatches),\"failures\":\(q.quotaFailures),\"last_sync_unix_ms\":\(q.quotaLastSyncUnixMs),\"last_error\":\(error)}"
            }
            return "{\"index\":\(worker.index),\"pid\":\(worker.pid.map { String($0) } ?? "null"),\"state\":\"\(worker.state.rawValue)\",\"restarts\":\(worker.restarts),\"config_version\":\(worker.configVersion),\"quota\":\(quota)}"
        }
        var redis = "null"
        if let shown = self.redis {
            redis = ""
            JSON.appendString(shown, to: &redis)
        }
        let oidc = self.oidc.map { source in
            "{\"source\":\(JSON.quoted(source.source)),\"issuer\":\(JSON.quoted(source.issuer)),\"version\":\(source.version),\"last_success_unix_ms\":\(source.lastSuccessUnixMs),\"last_error\":\(JSON.quoted(source.lastError))}"
        }
        var store = "null"
        if let s = self.store {
            store =
                "{\"kind\":\"mongodb\",\"uri\":\(JSON.quoted(s.uri)),\"connected\":\(s.connected),\"mode\":\"\(s.mode.rawValue)\",\"origin\":\(JSON.quoted(s.origin)),\"last_change_unix_ms\":\(s.lastChangeUnixMs),\"skipped_documents\":\(s.skipped),\"last_error\":\(JSON.quoted(s.lastError))}"
        }
        return "{\"ready\":\(self.isReady),\"config_loaded\":\(self.configLoaded),\"config_store\":\(store),\"draining\":\(self.draining),\"config_version\":\(self.configVersion),\"loaded_version\":\(self.loadedVersion),\"quota_sync\":\"\(self.quotaSync)\",\"quota_unsynced\":\(self.quotaUnsynced),\"redis\":\(redis),\"oidc\":[\(oidc.joined(separator: ","))],\"workers\":[\(workers.joined(separator: ","))]}"
    }
}

/// `/healthz`, `/readyz`, `/metrics` and the management API (`/api/v1`)
/// on the admin port.
enum AdminServer {
    struct Settings: Sendable {
        var api: ManagementAPI?
        var pool: NIOThreadPool?
        /// What `/metrics` renders; nil answers 404.
        var metrics: GatewayMetrics?
        /// `CORS_ALLOW_ORIGINS`: exact origins, or `*`.
        var corsOrigins: [String] = []
        var maxBodyBytes = 1 << 20
    }

    static func bind(
        group: any EventLoopGroup, address: HostPort, settings: Settings = Settings(), status: @escaping @Sendable () -> AdminStatus
    ) throws -> any Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(status: status, settings: settings))
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
    private let settings: AdminServer.Settings
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false
    private let ids = RequestIDGenerator()

    init(status: @escaping @Sendable () -> AdminStatus, settings: AdminServer.Settings) {
        self.status = status
        self.settings = settings
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = []
            self.tooLarge = false
        case .body(var chunk):
            if self.body.count + chunk.readableBytes > self.settings.maxBodyBytes {
                self.tooLarge = true
            } else if let bytes = chunk.readBytes(length: chunk.readableBytes) {
                self.body += bytes
            }
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = parts.first.map(String.init) ?? head.uri
        let requestID = head.headers.first(name: "X-Request-ID").flatMap { RequestIDGenerator.isAcceptable($0) ? $0 : nil } ?? self.ids.next()
        var extra: [(String, String)] = [("X-Request-ID", requestID)]
        if let origin = head.headers.first(name: "Origin"), let allowed = self.allowedOrigin(origin) {
            extra.append(("Access-Control-Allow-Origin", allowed))
            extra.append(("Vary", "Origin"))
            if head.method == .OPTIONS {
                extra.append(("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE"))
                extra.append(("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-ID"))
                extra.append(("Access-Control-Max-Age", "600"))
                self.write(head: head, code: .noContent, type: nil, body: nil, extra: extra, context: context)
                return
            }
        }
        if path.hasPrefix("/api/") {
            guard let api = self.settings.api, let pool = self.settings.pool else {
                self.write(head: head, code: .notFound, type: "application/json", body: "{\"error\":\"not_found\",\"message\":\"the management API is not running\"}", extra: extra, context: context)
                return
            }
            if self.tooLarge {
                self.write(head: head, code: .payloadTooLarge, type: "application/json", body: "{\"error\":\"payload_too_large\",\"message\":\"the body exceeds \(self.settings.maxBodyBytes) bytes\",\"request_id\":\(JSON.quoted(requestID))}", extra: extra, context: context)
                return
            }
            var query: [String: String] = [:]
            if parts.count > 1 {
                for pair in parts[1].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    let key = String(kv[0]).removingPercentEncoding ?? String(kv[0])
                    let value = kv.count > 1 ? (String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(kv[1])) : ""
                    query[key] = value
                }
            }
            let request = ManagementAPI.Request(
                method: head.method.rawValue, path: path, query: query, authorization: head.headers.first(name: "Authorization"),
                userAgent: head.headers.first(name: "User-Agent") ?? "", requestID: requestID,
                sourceIP: context.channel.remoteAddress?.ipAddress ?? "", body: self.body)
            self.body = []
            let loop = context.eventLoop
            let headers = extra
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            pool.runIfActive(eventLoop: loop) { api.handle(request) }.whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .success(let response):
                    handler.write(
                        head: head, code: HTTPResponseStatus(statusCode: response.status), type: response.body == nil ? nil : "application/json",
                        body: response.body, extra: headers, context: context)
                case .failure:
                    handler.write(head: head, code: .serviceUnavailable, type: "application/json", body: "{\"error\":\"unavailable\",\"message\":\"shutting down\"}", extra: headers, context: context)
                }
            }
            return
        }
        let (code, type, body): (HTTPResponseStatus, String, String)
        switch (head.method, path) {
        case (.GET, "/healthz"):
            (code, type, body) = (.ok, "application/json", "{\"status\":\"ok\"}")
        case (.GET, "/readyz"):
            let status = self.status()
            (code, type, body) = (status.isReady ? .ok : .serviceUnavailable, "application/json", status.readinessJSON())
        case (.GET, "/metrics") where self.settings.metrics != nil:
            let text = self.settings.metrics?.exposition(self.status(), nowUnixMs: WallClock.nowMillis()) ?? ""
            (code, type, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", text)
        default:
            (code, type, body) = (.notFound, "application/json", "{\"error\":\"not_found\",\"message\":\"no such admin endpoint\"}")
        }
        self.write(head: head, code: code, type: type, body: body, extra: extra, context: context)
    }

    private func allowedOrigin(_ origin: String) -> String? {
        if self.settings.corsOrigins.contains("*") { return "*" }
        return self.settings.corsOrigins.contains(origin) ? origin : nil
    }

    private func write(
        head: HTTPRequestHead, code: HTTPResponseStatus, type: String?, body: String?, extra: [(String, String)], context: ChannelHandlerContext
    ) {
        var headers = HTTPHeaders()
        if let type { headers.add(name: "Content-Type", value: type) }
        headers.add(name: "Content-Length", value: String(body?.utf8.count ?? 0))
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in extra { headers.add(name: name, value: value) }
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: code, headers: headers))), promise: nil)
        if let body {
            var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
            buffer.writeString(body)
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
