import CoreMetrics

/// One event loop's handles on the request metrics, cached by label so the
/// request path costs a dictionary lookup and an atomic add, not a trip
/// through the registry's lock. Confined to its loop, like `LoopContext`.
final class LoopMetrics {
    private struct Outcome: Hashable {
        let status: Int
        let reason: String
    }

    let shared: GatewayMetrics
    private var requests: [Outcome: CoreMetrics.Counter] = [:]
    private var upstreams: [String: CoreMetrics.Timer] = [:]

    init(_ shared: GatewayMetrics) {
        self.shared = shared
    }

    /// A response went out (proxied or local), `nanoseconds` after its head arrived.
    func answered(status: Int, reason: String, nanoseconds: Int64) {
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
        counter.increment()
        self.shared.requestDuration.recordNanoseconds(nanoseconds)
    }

    func decided(nanoseconds: Int64) {
        self.shared.decisionDuration.recordNanoseconds(nanoseconds)
    }

    func upstreamAnswered(collection: String, nanoseconds: Int64) {
        let timer: CoreMetrics.Timer
        if let cached = self.upstreams[collection] {
            timer = cached
        } else {
            timer = self.shared.upstreamDuration(collection: collection)
            self.upstreams[collection] = timer
        }
        timer.recordNanoseconds(nanoseconds)
    }
}
