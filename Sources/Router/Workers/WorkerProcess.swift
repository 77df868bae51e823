import CProcessSpawn

#if canImport(Glibc)
import Glibc
#endif

/// Starts worker processes with their sockets. Each worker gets one
/// connected Unix stream socket per router event loop (socketpair, so there
/// is no path on disk to secure or clean up) as descriptors 3, 4, ….
enum WorkerProcess {
    struct Started {
        let pid: pid_t
        /// The router's ends, one per event loop, in loop order.
        let routerSockets: [CInt]
    }

    struct SpawnError: Error, CustomStringConvertible {
        let message: String
        var description: String { self.message }
    }

    static func spawn(binary: String, slot: Int, connections: Int, extraArguments: [String] = []) throws(SpawnError) -> Started {
        var routerEnds: [CInt] = []
        var workerEnds: [CInt] = []
        func closeAll() {
            for fd in routerEnds + workerEnds { close(fd) }
        }
        for _ in 0..<connections {
            var pair: [CInt] = [-1, -1]
            let type = CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue)
            guard socketpair(AF_UNIX, type, 0, &pair) == 0 else {
                let message = String(cString: strerror(errno))
                closeAll()
                throw SpawnError(message: "socketpair: \(message)")
            }
            routerEnds.append(pair[0])
            workerEnds.append(pair[1])
        }
        let arguments = [binary, "--index", String(slot), "--connections", String(connections)] + extraArguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for pointer in argv { free(pointer) } }

        var pid: pid_t = 0
        let rc = workerEnds.withUnsafeBufferPointer { fds in
            pcl_spawn(binary, argv, environ, fds.baseAddress, CInt(fds.count), &pid)
        }
        for fd in workerEnds { close(fd) }
        workerEnds.removeAll()
        guard rc == 0 else {
            closeAll()
            throw SpawnError(message: "cannot start \(binary): \(String(cString: strerror(rc)))")
        }
        return Started(pid: pid, routerSockets: routerEnds)
    }

    /// `waitpid` status in words.
    static func describe(status: CInt) -> String {
        let signal = status & 0x7F
        if signal == 0 { return "exited with status \((status >> 8) & 0xFF)" }
        return "killed by signal \(signal)"
    }
}
