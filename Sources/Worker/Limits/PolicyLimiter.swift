import Shared

/// A policy compiled for the limiter, with its header names fixed once.
final class CompiledPolicy {
    struct Limit {
        let name: String
        let limit: Int
        let burst: Int
        let windowSeconds: Int
    }
    struct Quota {
        let name: String
        let limit: Int
        let period: QuotaPeriod
    }

    let id: String
    /// What it was compiled from: a delta recompiles only changed policies.
    let config: PolicyConfig
    let onRedisFailure: RedisFailureMode
    let limits: [Limit]
    let quotas: [Quota]
    /// Identifies the limits' shape: bucket state survives a config reload
    /// only while this stays the same.
    let fingerprint: String
    /// `RateLimit-Policy` built once when every window has a fixed length
    /// (no month quota), which is nearly always: it goes on every response.
    let fixedPolicyHeader: String?

    init(_ policy: PolicyConfig) {
        var used: [String: Int] = [:]
        func name(_ base: String) -> String {
            let n = (used[base] ?? 0) + 1
            used[base] = n
            return n == 1 ? base : "\(base)-\(n)"
        }
        self.id = policy.id
        self.config = policy
        self.onRedisFailure = policy.onRedisFailure
        self.limits = policy.rateLimits.map {
            Limit(name: name($0.per.rawValue), limit: $0.limit, burst: $0.effectiveBurst, windowSeconds: $0.per.seconds)
        }
        self.quotas = policy.quotas.map { Quota(name: name($0.per.rawValue), limit: $0.limit, period: $0.per) }
        self.fingerprint =
            policy.rateLimits.map { "\($0.limit)/\($0.per.rawValue)/\($0.effectiveBurst)" }.joined(separator: ",") + "|"
            + policy.quotas.map { "\($0.limit)/\($0.per.rawValue)" }.joined(separator: ",")
        let quotas = self.quotas
        self.fixedPolicyHeader =
            quotas.contains(where: { $0.period == .month })
            ? nil
            : RateLimitHeaders.policy(limits: self.limits, quotas: quotas) { quotas[$0].period == .day ? 86_400 : 604_800 }
    }

    var isEmpty: Bool { self.limits.isEmpty && self.quotas.isEmpty }
}

/// One client's buckets and quota accounts under its policy. A class: the
/// limiter mutates it in place, where a struct in a dictionary would be
/// copied (arrays and all) on every request.
final class ClientLimitState {
    let fingerprint: String
    var buckets: [TokenBucket]
    /// The ledger's accounts for the current windows, cached here so a
    /// request does not rebuild the key; refreshed when a window rolls or
    /// the ledger lets an account go.
    var quotas: [QuotaAccount?]

    init(policy: CompiledPolicy, time: DecisionTime) {
        self.fingerprint = policy.fingerprint
        self.buckets = policy.limits.map {
            TokenBucket(limit: $0.limit, burst: $0.burst, windowSeconds: $0.windowSeconds, now: time.monotonicNanos)
        }
        self.quotas = Array(repeating: nil, count: policy.quotas.count)
    }
}

/// The verdict of check 9, with the SPEC §2 header values either way.
struct LimitVerdict {
    enum Outcome: Equatable {
        case allowed
        case rateLimited(retryAfter: Int)
        case quotaExceeded(retryAfter: Int)
        /// The quota budget could not be confirmed in time (see `QuotaRoom.pending`).
        case quotaPending
        /// Redis is down and the policy fails closed.
        case quotaUnavailable
    }
    let outcome: Outcome
    let policyHeader: String
    let rateLimitHeader: RateLimitValue?
}

/// Owns every client's buckets in this worker, and uses the quota ledger for
/// the long windows. Confined to the worker's single event loop, so no
/// locking: the worker is the only writer.
final class PolicyLimiter {
    private var states: [String: ClientLimitState] = [:]
    let ledger: QuotaLedger
    /// Moves on whenever `states` loses entries: a state cached on a
    /// `CompiledClient` under an older generation is looked up again.
    private var generation = 0

    init(ledger: QuotaLedger = QuotaLedger(shared: false)) {
        self.ledger = ledger
    }

    var trackedClients: Int { self.states.count }

    /// Checks every limit and quota first and consumes only if all pass: a
    /// rejected request costs nothing, so a client over its limit is never
    /// held out for longer than the window (unlike counting rejections).
    func check(clientID: String, policy: CompiledPolicy, time: DecisionTime) -> LimitVerdict {
        self.check(clientID: clientID, policy: policy, state: self.state(clientID, policy, time), time: time)
    }

    /// The same, with the state found through the client's cache when it
    /// is current (the usual case: no hashing of the client id).
    func check(client: CompiledClient, policy: CompiledPolicy, time: DecisionTime) -> LimitVerdict {
        let state: ClientLimitState
        if let cached = client.limitState, client.limitGeneration == self.generation, cached.fingerprint == policy.fingerprint {
            state = cached
        } else {
            state = self.state(client.id, policy, time)
            client.limitState = state
            client.limitGeneration = self.generation
        }
        return self.check(clientID: client.id, policy: policy, state: state, time: time)
    }

    private func state(_ clientID: String, _ policy: CompiledPolicy, _ time: DecisionTime) -> ClientLimitState {
        let existing = self.states[clientID]
        if let existing, existing.fingerprint == policy.fingerprint { return existing }
        let state = ClientLimitState(policy: policy, time: time)
        self.states[clientID] = state
        // A replaced state must not live on in some client's cache.
        if existing != nil { self.generation += 1 }
        return state
    }

    private func check(clientID: String, policy: CompiledPolicy, state: ClientLimitState, time: DecisionTime) -> LimitVerdict {

        var rateRetry = 0
        for index in state.buckets.indices {
            state.buckets[index].refill(now: time.monotonicNanos)
            if !state.buckets[index].hasToken { rateRetry = max(rateRetry, state.buckets[index].secondsUntilToken) }
        }
        var quotaRetry = 0
        var quotaPending = false
        var quotaUnavailable = false
        for index in state.quotas.indices {
            let account = self.account(state, index, clientID: clientID, policy: policy, time: time)
            switch self.ledger.room(account) {
            case .room: break
            case .exhausted: quotaRetry = max(quotaRetry, Int(max(1, account.window.end - time.unixSeconds)))
            case .pending: quotaPending = true
            case .unavailable: quotaUnavailable = true
            }
        }

        let outcome: LimitVerdict.Outcome
        if rateRetry > 0 {
            outcome = .rateLimited(retryAfter: rateRetry)
        } else if quotaRetry > 0 {
            outcome = .quotaExceeded(retryAfter: quotaRetry)
        } else if quotaUnavailable {
            outcome = .quotaUnavailable
        } else if quotaPending {
            outcome = .quotaPending
        } else {
            outcome = .allowed
            for index in state.buckets.indices { state.buckets[index].take() }
            for account in state.quotas { if let account { self.ledger.spend(account, now: time.monotonicNanos) } }
        }
        return LimitVerdict(
            outcome: outcome,
            policyHeader: RateLimitHeaders.policy(policy, state: state),
            rateLimitHeader: RateLimitHeaders.tightest(policy, state: state, ledger: self.ledger, now: time.unixSeconds))
    }

    private func account(
        _ state: ClientLimitState, _ index: Int, clientID: String, policy: CompiledPolicy, time: DecisionTime
    ) -> QuotaAccount {
        if let cached = state.quotas[index], !cached.retired,
            time.unixSeconds >= cached.window.start, time.unixSeconds < cached.window.end
        {
            self.ledger.touch(cached, now: time.monotonicNanos)
            return cached
        }
        let quota = policy.quotas[index]
        let account = self.ledger.account(
            clientID: clientID, name: quota.name, window: QuotaWindow(period: quota.period, containing: time.unixSeconds),
            limit: quota.limit, failureMode: policy.onRedisFailure, now: time.monotonicNanos)
        state.quotas[index] = account
        return account
    }

    /// Drops state of clients that left this worker or whose policy changed
    /// shape; keeps the rest so a reload does not refill anyone's bucket.
    /// Quota accounts live in the ledger, by key, so they survive either way.
    func retain(where keep: (String, String) -> Bool) {
        self.states = self.states.filter { keep($0.key, $0.value.fingerprint) }
        self.generation += 1
    }
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers
/// -07 and later, structured fields): q = limit, w = window seconds (a
/// calendar quota's current window length), r = remaining, t = seconds until
/// the bucket is full again or the window ends.
enum RateLimitHeaders {
    static func policy(_ policy: CompiledPolicy, state: ClientLimitState) -> String {
        if let fixed = policy.fixedPolicyHeader { return fixed }
        return self.policy(limits: policy.limits, quotas: policy.quotas) { state.quotas[$0]?.window.lengthSeconds ?? 0 }
    }

    /// The header text; `quotaWindow(i)` is quota i's current window length.
    static func policy(
        limits: [CompiledPolicy.Limit], quotas: [CompiledPolicy.Quota], quotaWindow: (Int) -> Int
    ) -> String {
        var items: [String] = []
        items.reserveCapacity(limits.count + quotas.count)
        for limit in limits { items.append("\"\(limit.name)\";q=\(limit.limit);w=\(limit.windowSeconds)") }
        for (index, quota) in quotas.enumerated() {
            items.append("\"\(quota.name)\";q=\(quota.limit);w=\(quotaWindow(index))")
        }
        return items.joined(separator: ", ")
    }

    /// The limit or quota with the fewest remaining requests; ties go to the
    /// shortest window.
    static func tightest(_ policy: CompiledPolicy, state: ClientLimitState, ledger: QuotaLedger, now: Int64) -> RateLimitValue? {
        var best: (remaining: Int, window: Int, name: String, reset: Int)? = nil
        func consider(_ remaining: Int, _ window: Int, _ name: String, _ reset: Int) {
            if let current = best, (current.remaining, current.window) <= (remaining, window) { return }
            best = (remaining, window, name, reset)
        }
        for (index, limit) in policy.limits.enumerated() {
            let bucket = state.buckets[index]
            consider(bucket.remaining, limit.windowSeconds, limit.name, bucket.secondsUntilFull)
        }
        for (index, quota) in policy.quotas.enumerated() {
            guard let account = state.quotas[index] else { continue }
            let reset = Int(max(1, account.window.end - now))
            consider(ledger.remaining(account), account.window.lengthSeconds, quota.name, reset)
        }
        guard let best else { return nil }
        // Parts, not text: the router writes them into the head.
        return RateLimitValue(name: best.name, remaining: best.remaining, reset: best.reset)
    }
}
