import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reaps exited workers on a thread of its own (waitpid blocks, and must
/// never run on an event loop) and reports each exit.
final class ChildReaper: @unchecked Sendable {
    private let spawned = DispatchSemaphore(value: 0)
    private let onExit: @Sendable (pid_t, CInt) -> Void

    init(onExit: @escaping @Sendable (pid_t, CInt) -> Void) {
        self.onExit = onExit
        let thread = Thread { [self] in self.run() }
        thread.name = "worker-reaper"
        thread.start()
    }

    /// Call after starting a child, so a reaper idling on "no children"
    /// starts waiting for it.
    func childStarted() {
        self.spawned.signal()
    }

    private func run() {
        while true {
            var status: CInt = 0
            let pid = waitpid(-1, &status, 0)
            if pid > 0 {
                self.onExit(pid, status)
            } else if errno == ECHILD {
                self.spawned.wait()
            } else if errno != EINTR {
                usleep(100_000)
            }
        }
    }
}
