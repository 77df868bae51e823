// epoll-passthrough LISTEN_PORT UPSTREAM_PORT [THREADS]
// The same job as nio-passthrough on a bare epoll loop per thread
// (SO_REUSEPORT listeners): what moving the bytes costs without SwiftNIO.
import Glibc

guard CommandLine.arguments.count >= 3, let port = UInt16(CommandLine.arguments[1]),
    let upstreamPort = UInt16(CommandLine.arguments[2])
else { fatalError("usage: epoll-passthrough LISTEN_PORT UPSTREAM_PORT [THREADS]") }
let threads = CommandLine.arguments.count > 3 ? Int(CommandLine.arguments[3]) ?? 2 : 2
Passthrough.run(port: port, upstreamPort: upstreamPort, threads: threads)
