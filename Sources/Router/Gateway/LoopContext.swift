import Logging
import NIOCore
import Shared

/// What the router needs per request, as an immutable value swapped on a
/// config change: where each collection's traffic goes and the
/// connection-independent limits.
struct RouterSnapshot: Sendable {
    let version: UInt64
    let routes: [String: UpstreamRoute]
    let trustedProxies: IPRangeSet
    let maxBodyBytes: Int

    init(version: UInt64, config: ValidatedConfig) {
        self.version = version
        var routes: [String: UpstreamRoute] = [:]
        for collection in config.model.collections {
            guard let url = config.upstreams[collection.id] else { continue }
            routes[collection.id] = UpstreamRoute(
                collectionID: collection.id, url: url, timeoutMs: collection.upstream.timeoutMs,
                keepAuthorization: collection.keepAuthorization,
                credential: collection.upstream.credential.flatMap { config.credentials[$0] })
        }
        self.routes = routes
        self.trustedProxies = config.trustedProxies
        self.maxBodyBytes = config.model.server.limits.maxBodyBytes
    }
}

/// Everything one router event loop owns: its links to every worker, its
/// upstream connection pool, its request-id generator and its copy of the
/// snapshot. Touched only on that loop, so the request path takes no locks.
final class LoopContext {
    let index: Int
    let eventLoop: any EventLoop
    var snapshot: RouterSnapshot {
        didSet { self.lastRoute = nil }
    }
    let links: [WorkerLink]
    let upstreams: UpstreamPool
    let requestIDs = RequestIDGenerator()
    let logger = Logger(label: "portcullis")
    let ring: ShardRing
    let decisionLog: DecisionLog
    /// Limits fixed when a connection is accepted (parser settings).
    let limits: LimitsConfig
    let metrics: LoopMetrics

    init(
        index: Int, eventLoop: any EventLoop, snapshot: RouterSnapshot, workerCount: Int, decisionLog: DecisionLog, limits: LimitsConfig,
        metrics: GatewayMetrics
    ) {
        self.index = index
        self.eventLoop = eventLoop
        self.snapshot = snapshot
        self.links = (0..<workerCount).map { WorkerLink(slot: $0, eventLoop: eventLoop, inFlight: metrics.workerInFlight($0)) }
        self.metrics = LoopMetrics(metrics)
        self.upstreams = UpstreamPool(eventLoop: eventLoop)
        self.ring = ShardRing(count: workerCount)
        self.decisionLog = decisionLog
        self.limits = limits
    }

    /// The last route looked up: consecutive decisions mostly name the same
    /// collection, and the worker's decoded ids are shared Strings
    /// (`RecentTexts`), so comparing them is cheaper than hashing one.
    private var lastRoute: UpstreamRoute?

    /// The upstream of a collection in this loop's snapshot.
    func route(_ collectionID: String) -> UpstreamRoute? {
        if let last = self.lastRoute, last.collectionID == collectionID { return last }
        let route = self.snapshot.routes[collectionID]
        self.lastRoute = route
        return route
    }
}
