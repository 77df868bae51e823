import Foundation
import Testing

@testable import Worker

#if canImport(Glibc)
import Glibc
#endif

/// `WorkerScheduling` changes the calling thread's policy, so each case
/// runs on a thread of its own and leaves the test runner's alone.
@Suite("Worker scheduling policy")
struct WorkerSchedulingTests {
    /// Runs `body` on a new thread and waits for it.
    static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.value = body()
            done.signal()
        }
        thread.start()
        done.wait()
        return box.value!
    }

    @Test("batch by default: the thread and the threads it starts run SCHED_BATCH")
    func batchByDefault() {
        let (said, own, child) = Self.onOwnThread { () -> (String, String, String) in
            let said = WorkerScheduling.apply(setting: nil)
            return (said, WorkerScheduling.current, Self.onOwnThread { WorkerScheduling.current })
        }
        #expect(said == "batch")
        #expect(own == "batch")
        #expect(child == "batch")
    }

    @Test("normal, or an unknown setting, leaves the default policy and says why", arguments: ["normal", "fifo"])
    func leftAlone(_ setting: String) {
        let (said, own) = Self.onOwnThread { (WorkerScheduling.apply(setting: setting), WorkerScheduling.current) }
        #expect(said.hasPrefix("normal ("))
        #expect(said.contains(setting))
        #expect(own == "normal")
    }
}

/// What a thread hands back; written once before the semaphore is signalled.
private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
