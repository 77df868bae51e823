/// A token bucket in exact integer arithmetic.
///
/// One token is `windowNanos` units and the bucket gains `limit` units per
/// nanosecond, so refill never accumulates rounding error: a bucket of
/// `limit: 10, per: second` holds exactly one more token every 100 ms.
/// Int128 keeps `burst * windowNanos` from overflowing for any sane policy
/// (an hour window with a burst of ten million is 3.6e19 units).
struct TokenBucket: Equatable {
    let limit: Int
    let burst: Int
    let windowNanos: Int128
    private(set) var units: Int128
    private(set) var updatedAt: UInt64

    init(limit: Int, burst: Int, windowSeconds: Int, now: UInt64) {
        self.limit = limit
        self.burst = burst
        self.windowNanos = Int128(windowSeconds) * 1_000_000_000
        self.units = Int128(burst) * self.windowNanos
        self.updatedAt = now
    }

    private var capacity: Int128 { Int128(self.burst) * self.windowNanos }

    /// Adds what flowed in since the last update. Time never runs backwards
    /// here (monotonic clock), but a stale `now` is ignored rather than trusted.
    mutating func refill(now: UInt64) {
        guard now > self.updatedAt else { return }
        let elapsed = Int128(now - self.updatedAt)
        self.units = min(self.capacity, self.units + elapsed * Int128(self.limit))
        self.updatedAt = now
    }

    var hasToken: Bool { self.units >= self.windowNanos }

    mutating func take() {
        self.units -= self.windowNanos
    }

    /// Whole tokens left.
    var remaining: Int { Int(self.units / self.windowNanos) }

    /// Seconds, rounded up, until one token is available (0 if one is).
    var secondsUntilToken: Int {
        guard !self.hasToken else { return 0 }
        return Self.ceilSeconds(nanos: Self.ceilDiv(self.windowNanos - self.units, Int128(self.limit)))
    }

    /// Seconds, rounded up, until the bucket is full again (`t` of SPEC §9).
    var secondsUntilFull: Int {
        Self.ceilSeconds(nanos: Self.ceilDiv(self.capacity - self.units, Int128(self.limit)))
    }

    private static func ceilDiv(_ a: Int128, _ b: Int128) -> Int128 { a <= 0 ? 0 : (a + b - 1) / b }
    private static func ceilSeconds(nanos: Int128) -> Int { Int(ceilDiv(nanos, 1_000_000_000)) }
}
