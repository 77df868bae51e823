import NIOCore
import Shared

/// Decisions parked until fresh OIDC keys arrive: a token named a `kid`
/// this worker's copy of the JWKS lacks, so the IdP may have rotated keys.
/// The first waiter for a source asks the router for a fetch; the KeySet
/// answer (or `maxWait`) releases everyone, who is then decided again
/// without waiting. Rotation thus costs the first requests a fetch's
/// latency, not a 401 storm. Confined to the worker's event loop.
final class KeyWaitRoom {
    struct Waiter {
        let request: DecisionRequest
        let answer: (DecisionResponse) -> Void
    }

    /// Longer than the router's fetch timeout, so a slow IdP answers first.
    static let maxWait = TimeAmount.seconds(6)
    /// A flood of made-up `kid`s must not park unbounded memory.
    static let maxWaitersPerSource = 10_000

    private let loop: any EventLoop
    private var waiting: [String: [Waiter]] = [:]
    private var timers: [String: Scheduled<Void>] = [:]
    /// Called with the waiters of a source when they must be decided again.
    var onRelease: (([Waiter]) -> Void)? = nil

    init(loop: any EventLoop) {
        self.loop = loop
    }

    /// Parks `waiter`; returns true when this is the first for `source`
    /// (the caller then asks the router to fetch). False with a full room:
    /// the caller answers at once.
    func park(_ waiter: Waiter, source: String) -> Bool? {
        var list = self.waiting[source, default: []]
        guard list.count < Self.maxWaitersPerSource else { return nil }
        let first = list.isEmpty
        list.append(waiter)
        self.waiting[source] = list
        if first {
            let bound = NIOLoopBound(self, eventLoop: self.loop)
            self.timers[source] = self.loop.scheduleTask(in: Self.maxWait) { bound.value.release(source) }
        }
        return first
    }

    /// Keys for `source` arrived (or the wait timed out).
    func release(_ source: String) {
        self.timers.removeValue(forKey: source)?.cancel()
        guard let list = self.waiting.removeValue(forKey: source), !list.isEmpty else { return }
        self.onRelease?(list)
    }

    var count: Int { self.waiting.values.reduce(0) { $0 + $1.count } }
}
