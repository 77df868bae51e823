#if canImport(Glibc)
import Glibc
#endif

/// The worker runs under Linux's SCHED_BATCH policy unless
/// `PORTCULLIS_WORKER_SCHED=normal`. A worker is woken by every batch of
/// decision requests its router thread writes, and under CFS/EEVDF a
/// freshly woken task normally preempts the one that woke it: the router
/// thread is switched out mid-burst, its next requests wait, and the worker
/// answers a smaller batch. A SCHED_BATCH task does not preempt on wakeup;
/// it runs when the router thread blocks or its slice ends, and then
/// answers everything written meanwhile. Same share of CPU (nice is
/// unchanged), fewer switches. Measured on the 2-core bench box, same
/// build, 10 interleaved pairs: +5% requests/s, -6% CPU per request, p99
/// -14%. Setting the router's threads to SCHED_BATCH as well gained nothing.
enum WorkerScheduling {
    /// SCHED_BATCH from <linux/sched.h> (part of the kernel ABI). Glibc's
    /// header declares it only under _GNU_SOURCE, which Swift's Glibc
    /// module does not define.
    static let schedBatch: Int32 = 3

    /// Applies the policy to the calling thread; threads started after it
    /// (the event loop, the quota sync) inherit it. Returns a line for the log.
    static func apply(setting: String?) -> String {
        let wanted = setting ?? "batch"
        switch wanted {
        case "normal":
            return "normal (PORTCULLIS_WORKER_SCHED=normal)"
        case "batch":
            #if os(Linux)
            var parameters = sched_param()
            parameters.sched_priority = 0
            // Needs no privilege (only the real-time policies do); a
            // sandbox that forbids it leaves the default, which works.
            if sched_setscheduler(0, Self.schedBatch, &parameters) != 0 {
                return "normal (SCHED_BATCH refused: errno \(errno))"
            }
            return "batch"
            #else
            return "normal (SCHED_BATCH is Linux only)"
            #endif
        default:
            return "normal (PORTCULLIS_WORKER_SCHED=\(wanted) is neither batch nor normal)"
        }
    }

    /// The calling thread's policy as the kernel reports it.
    static var current: String {
        #if os(Linux)
        switch sched_getscheduler(0) {
        case Self.schedBatch: return "batch"
        case SCHED_OTHER: return "normal"
        case let other: return "policy \(other)"
        }
        #else
        return "normal"
        #endif
    }
}
