import Shared

/// How this worker reaches the shared quota budget right now.
enum QuotaHealth: String, Sendable, Equatable {
    /// No Redis configured: quotas are exact within this instance.
    case local
    /// Redis configured, first sync not done yet: spend as if it were up.
    case connecting
    case up
    /// The last sync failed: policies' `on_redis_failure` applies.
    case down
}

/// Whether one more request fits a quota, as far as this holder can tell.
enum QuotaRoom: Equatable {
    case room
    /// The window's budget is spent (globally, or locally without Redis).
    case exhausted
    /// This holder's slice and borrow are spent and its next claim has not
    /// come back: 429 with `Retry-After: 1` rather than risk the bound.
    case pending
    /// Redis is down and the policy is `fail_closed`: 503.
    case unavailable
}

/// One client's quota window as this holder (one worker of one instance)
/// sees it. A holder spends only what Redis granted it (its slices), so the
/// instances together never spend more than the limit plus the borrow caps;
/// see `QuotaLedger` for the protocol and README "Quotas across instances"
/// for the bound.
final class QuotaAccount {
    /// `portcullis:quota:{<client>}:<name>:<window start>`: the braces make
    /// the client id a Redis Cluster hash tag.
    let key: String
    let window: QuotaWindow
    var limit: Int
    var failureMode: RedisFailureMode

    /// Requests this holder allowed in the window (absolute, never reset).
    var spent = 0
    /// `spent` as Redis last acknowledged it.
    var syncedSpent = 0
    /// This holder's granted total in the window as Redis last said.
    var granted = 0
    /// Sum of every other holder's grants at the last reply.
    var othersGranted = 0
    /// Holders at the last reply, this one included.
    var holders = 1
    /// Redis has answered for this account at least once (or the journal
    /// restored it), so `granted`/`othersGranted` mean something.
    var known = false
    /// The next batch must read the key (first contact, after a failure or
    /// a reconnect: Redis may have lost or moved on from what we think).
    var needsFull = true
    var inFlight = false
    /// Set when this account leaves the ledger; holders of a stale reference look it up again.
    var retired = false

    var lastSlice = 0
    var lastReplyNanos: UInt64 = 0
    var deniedSinceReply = false
    var firstUnsyncedNanos: UInt64? = nil
    var lastSpendNanos: UInt64 = 0
    var lastUseNanos: UInt64 = 0
    /// Spends per second, measured between claims.
    var rate: Double = 0
    var rateMarkSpent = 0
    var rateMarkNanos: UInt64 = 0
    var journalSlot: Int? = nil

    init(key: String, window: QuotaWindow, limit: Int, failureMode: RedisFailureMode, now: UInt64) {
        self.key = key
        self.window = window
        self.limit = limit
        self.failureMode = failureMode
        self.rateMarkNanos = now
        self.lastUseNanos = now
    }

    static func key(clientID: String, name: String, windowStart: Int64) -> String {
        "portcullis:quota:{\(clientID)}:\(name):\(windowStart)"
    }

    /// Budget nobody has been granted yet, as of the last reply.
    var unclaimed: Int { self.limit - self.othersGranted - max(self.granted, self.spent) }

    /// Requests that may still be allowed across the fleet, as far as this
    /// holder knows: what nobody claimed plus its own unspent slice.
    func remaining(_ health: QuotaHealth) -> Int {
        if health == .local { return max(0, self.limit - self.spent) }
        return max(0, self.limit - self.othersGranted - self.spent)
    }

    /// Spends beyond the grant allowed while a claim is on its way. Split
    /// over the holders so that all of them together stay within
    /// max(1% of the limit, 5), the SPEC §9 goal.
    func borrowCap(holdersEstimate: Int) -> Int {
        let allowance = max(self.limit / 100, 5)
        return max(1, allowance / max(self.holders, holdersEstimate, 1))
    }

    func room(_ health: QuotaHealth, holdersEstimate: Int) -> QuotaRoom {
        switch health {
        case .local:
            return self.spent < self.limit ? .room : .exhausted
        case .up, .connecting:
            if self.spent < self.granted { return .room }
            if self.known && self.unclaimed <= 0 { return .exhausted }
            return self.spent - self.granted < self.borrowCap(holdersEstimate: holdersEstimate) ? .room : .pending
        case .down:
            if self.spent < self.granted { return .room }
            switch self.failureMode {
            case .failOpen: return self.spent + self.othersGranted < self.limit ? .room : .exhausted
            case .failClosed: return .unavailable
            }
        }
    }

    /// How much to ask for: about `sliceSeconds` of this client's observed
    /// rate, at least 1% of the limit, and never more than an even share of
    /// what is left, so the last part of a budget spreads across holders
    /// instead of sitting unspent in one.
    func want(sliceSeconds: Double, holdersEstimate: Int) -> Int {
        let floor = max(1, self.limit / 100)
        let left = self.known ? self.unclaimed : self.limit - self.spent
        guard left > 0 else { return 0 }
        // Known: the holders Redis has seen; a newcomer still finds half of
        // what is left. Unknown: assume company.
        let holders = self.known ? max(self.holders, 1) : max(self.holders, holdersEstimate)
        let share = (left + holders) / (holders + 1)
        // Before a rate is known, a fair share: in the common case (the
        // ingress hashes each client to one instance) that is one holder
        // taking half of what is left, then half again, a handful of calls
        // for the whole window.
        guard self.rate > 0 else { return min(left, max(floor, share)) }
        let bySpeed = Int(min(self.rate * sliceSeconds, Double(self.limit)))
        return min(left, max(floor, min(bySpeed, share)))
    }
}
