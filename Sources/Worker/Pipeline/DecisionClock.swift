#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The two clocks a decision reads, taken once per request: monotonic time
/// for token buckets (immune to wall-clock steps) and UTC wall time for
/// calendar quota windows.
struct DecisionTime: Sendable, Equatable {
    var monotonicNanos: UInt64
    var unixSeconds: Int64
}

protocol DecisionClock {
    func now() -> DecisionTime
}

struct SystemDecisionClock: DecisionClock {
    func now() -> DecisionTime {
        var mono = timespec()
        var wall = timespec()
        clock_gettime(CLOCK_MONOTONIC, &mono)
        clock_gettime(CLOCK_REALTIME, &wall)
        return DecisionTime(
            monotonicNanos: UInt64(mono.tv_sec) * 1_000_000_000 + UInt64(mono.tv_nsec),
            unixSeconds: Int64(wall.tv_sec))
    }
}
