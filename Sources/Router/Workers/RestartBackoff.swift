/// Delay before respawning a worker (SPEC §9): 100 ms, doubling to 5 s, and
/// back to 100 ms once a worker has stayed up for 30 s. A worker that
/// crashes at start-up therefore cannot spin the CPU, and one that crashes
/// once a week restarts at once.
struct RestartBackoff: Equatable {
    static let initialMs: Int64 = 100
    static let maximumMs: Int64 = 5000
    static let healthyResetMs: Int64 = 30_000

    private(set) var nextMs: Int64 = Self.initialMs

    /// The delay to wait after a worker that ran for `uptimeMs` exited.
    mutating func delay(afterUptimeMs uptimeMs: Int64) -> Int64 {
        if uptimeMs >= Self.healthyResetMs { self.nextMs = Self.initialMs }
        let delay = self.nextMs
        self.nextMs = min(self.nextMs * 2, Self.maximumMs)
        return delay
    }
}
