import CoreMetrics

/// One event loop's handles on the request metrics, cached by label so the
/// request path costs a lookup and an atomic add, not a trip through the
/// registry's lock. Confined to its loop, like `LoopContext`.
final class LoopMetrics {
    private struct Outcome: Hashable {
        let status: Int
        let reason: String
    }

    let shared: GatewayMetrics
    private let decision: LatencyHistogram
    private let request: LatencyHistogram
    private var requests: [Outcome: CoreMetrics.Counter] = [:]
    /// The outcome counted last: nearly every request repeats it (200
    /// allowed), so it skips even the dictionary's string hashing.
    private var last: (outcome: Outcome, counter: CoreMetrics.Counter)?
    private var upstreams: [String: LatencyHistogram] = [:]
    private var lastUpstream: (collection: String, histogram: LatencyHistogram)?

    init(_ shared: GatewayMetrics) {
        self.shared = shared
        self.decision = shared.decisionDuration.make()
        self.request = shared.requestDuration.make()
    }

    /// A response went out (proxied or local), `nanoseconds` after its head arrived.
    func answered(status: Int, reason: String, nanoseconds: Int64) {
        self.counter(status: status, reason: reason).increment()
        self.request.record(nanoseconds: nanoseconds)
    }

    private func counter(status: Int, reason: String) -> CoreMetrics.Counter {
        if let last = self.last, last.outcome.status == status, last.outcome.reason == reason { return last.counter }
        let key = Outcome(status: status, reason: reason)
        let counter: CoreMetrics.Counter
        if let cached = self.requests[key] {
            counter = cached
        } else {
            // Reason codes are a closed set (ReasonCode), statuses a handful:
            // the cache stays small.
            counter = self.shared.requests(status: status, reason: reason)
            self.requests[key] = counter
        }
        self.last = (key, counter)
        return counter
    }

    func decided(nanoseconds: Int64) {
        self.decision.record(nanoseconds: nanoseconds)
    }

    func upstreamAnswered(collection: String, nanoseconds: Int64) {
        if let last = self.lastUpstream, last.collection == collection {
            last.histogram.record(nanoseconds: nanoseconds)
            return
        }
        let histogram: LatencyHistogram
        if let cached = self.upstreams[collection] {
            histogram = cached
        } else {
            histogram = self.shared.upstreamDuration.make(labels: [("collection", collection)])
            self.upstreams[collection] = histogram
        }
        self.lastUpstream = (collection, histogram)
        histogram.record(nanoseconds: nanoseconds)
    }
}
