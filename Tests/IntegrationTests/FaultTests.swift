import Foundation
import Shared
import Testing

#if canImport(Glibc)
import Glibc
#endif

private typealias F = GatewayFixture

/// Bounded steady load on one client's route from its own thread: every
/// answer's status and latency, until stopped or `maxRequests`.
final class SteadyLoad: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private var statuses: [Int] = []
    private var latencies: [Double] = []
    private let thread: Thread

    init(port: Int, path: String, headers: [(String, String)], maxRequests: Int = 5_000) {
        let request = "GET \(path) HTTP/1.1\r\nHost: load.test\r\n" + headers.map { "\($0.0): \($0.1)\r\n" }.joined() + "Connection: close\r\n\r\n"
        let box = Box()
        self.thread = Thread {
            guard let load = box.load else { return }
            for _ in 0..<maxRequests {
                if load.lock.withLock({ load.stopped }) { break }
                let started = Date()
                let status = (try? HTTPClient.request(port: port, request))?.status ?? -1
                let elapsed = Date().timeIntervalSince(started)
                load.lock.withLock {
                    load.statuses.append(status)
                    load.latencies.append(elapsed)
                }
                usleep(1_000)
            }
        }
        box.load = self
        self.thread.start()
    }

    private final class Box: @unchecked Sendable { weak var load: SteadyLoad? }

    var count: Int { self.lock.withLock { self.statuses.count } }

    /// Stops; the statuses and the p50/p99/max latency in ms.
    func finish() -> (statuses: [Int], p50: Double, p99: Double, max: Double) {
        self.lock.withLock { self.stopped = true }
        while !self.thread.isFinished { usleep(5_000) }
        return self.lock.withLock {
            let sorted = self.latencies.sorted()
            func at(_ q: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))] * 1000 }
            return (self.statuses, at(0.5), at(0.99), (sorted.last ?? 0) * 1000)
        }
    }
}

struct HungResult: Sendable {
    let status: Int
    let seconds: Double
}

/// SPEC §6/§7 and issue 6's faults, each under a steady bounded load of
/// another client on the same gateway; each prints what it measured.
@Suite("Faults under steady load (real processes)", .serialized)
struct FaultTests {
    @Test func aHangingUpstreamTimesOutWithoutHurtingOtherCollections() throws {
        let cluster = try F.start()
        defer { cluster.stop() }
        let load = SteadyLoad(port: cluster.port, path: "/status/200", headers: F.identity("acme", "acme-open"))
        try waitUntil(5, "load running") { load.count >= 20 }
        // 16 requests to a collection whose upstream holds them for 5 s
        // (timeout_ms 300), all at once.
        let results = Atomic<[HungResult]>([])
        let port = cluster.port
        let threads = (0..<16).map { _ in
            Thread {
                let started = Date()
                let status = (try? HTTPClient.request(
                    port: port,
                    "GET /slow/delay/5000 HTTP/1.1\r\nHost: t\r\n" + F.acme().map { "\($0.0): \($0.1)\r\n" }.joined() + "Connection: close\r\n\r\n"))?.status ?? -1
                let elapsed = Date().timeIntervalSince(started)
                results.mutate { $0.append(HungResult(status: status, seconds: elapsed)) }
            }
        }
        threads.forEach { $0.start() }
        try waitUntil(10, "the hanging requests to time out") { results.load().count == 16 }
        let (statuses, p50, p99, max) = load.finish()
        let hung = results.load()
        let slowest = hung.map(\.seconds).max() ?? 0
        print("hanging upstream: 16 requests → \(Set(hung.map(\.status))) in ≤ \(String(format: "%.2f", slowest)) s; other collection: \(statuses.count) requests, \(statuses.filter { $0 != 200 }.count) not 200, p50 \(String(format: "%.1f", p50)) ms, p99 \(String(format: "%.1f", p99)) ms, max \(String(format: "%.1f", max)) ms")
        #expect(hung.allSatisfy { $0.status == 504 }, "\(hung)")
        #expect(slowest < 2.0, "answered at the 300 ms timeout, not the upstream's 5 s")
        #expect(statuses.filter { $0 != 200 }.isEmpty)
    }

    @Test func slowlorisConnectionsAreClosedAtTheHeaderTimeout() throws {
        let cluster = try F.start()
        defer { cluster.stop() }
        let load = SteadyLoad(port: cluster.port, path: "/status/200", headers: F.identity("acme", "acme-open"))
        try waitUntil(5, "load running") { load.count >= 20 }
        // 100 connections that send a request line and then one header line
        // every 100 ms, never finishing the head (header_timeout_ms 400).
        let slow = try (0..<100).map { _ in try HTTPClient(port: cluster.port, timeoutSeconds: 5) }
        let started = Date()
        for client in slow { try? client.send("GET /orders/1 HTTP/1.1\r\nHost: t\r\n") }
        var open = Set(0..<slow.count)
        var answered408 = 0
        var closedAt: [Double] = []
        let deadline = Date().addingTimeInterval(8)
        // Trickle to all of them; a write to a closed one fails, which is
        // how we see it closed.
        while !open.isEmpty && Date() < deadline {
            for i in open where (try? slow[i].send("X-Trickle: \(i)\r\n")) == nil {
                open.remove(i)
                closedAt.append(Date().timeIntervalSince(started))
            }
            usleep(100_000)
        }
        for client in slow {
            if let response = try? client.readResponse(), response.status == 408 { answered408 += 1 }
        }
        let (statuses, p50, p99, max) = load.finish()
        print("slowloris: 100 connections, \(answered408) answered 408, last closed after \(String(format: "%.2f", closedAt.max() ?? -1)) s, \(open.count) still open; other traffic: \(statuses.count) requests, \(statuses.filter { $0 != 200 }.count) not 200, p50 \(String(format: "%.1f", p50)) ms, p99 \(String(format: "%.1f", p99)) ms, max \(String(format: "%.1f", max)) ms")
        #expect(open.isEmpty, "every slow connection is closed")
        #expect((closedAt.max() ?? 99) < 3.0, "closed at the 400 ms header timeout, not by the trickle's pace")
        #expect(answered408 >= 90, "told why (408) before being closed")
        #expect(statuses.filter { $0 != 200 }.isEmpty)
    }

    @Test func sigtermUnderLoadCompletesInFlightAndRefusesCleanly() throws {
        // An upstream that counts the requests it holds, so the test knows
        // they are in flight at the gateway when the signal goes.
        let holding = try HoldingUpstream(holdMilliseconds: 1_500)
        defer { holding.stop() }
        let cluster = try Cluster(workers: 2) { cluster in
            cluster.serverBlock() + """

                collections:
                  - id: held
                    upstream: { url: "http://127.0.0.1:\(holding.port)", timeout_ms: 5000 }
                    routes: [ { path_prefix: /held } ]
                  - id: status
                    upstream: { url: "\(cluster.upstreamURL)" }
                    routes: [ { path_prefix: /status, strip_prefix: true } ]
                clients:
                  - id: open
                    collections: [held, status]
                    profiles: [ { id: open-none, auth: { type: none } } ]
                """
        }
        defer { cluster.stop() }
        let identity = [("X-Client-ID", "open"), ("X-Profile-ID", "open-none")]
        let load = SteadyLoad(port: cluster.port, path: "/status/200", headers: identity)
        try waitUntil(5, "load running") { load.count >= 20 }
        let inFlight = try (0..<10).map { _ in try HTTPClient(port: cluster.port) }
        for (i, client) in inFlight.enumerated() {
            try client.send("GET /held/\(i) HTTP/1.1\r\nHost: t\r\nX-Client-ID: open\r\nX-Profile-ID: open-none\r\n\r\n")
        }
        try waitUntil(5, "the ten requests to reach the upstream") { holding.received >= 10 }
        let workerPIDs = cluster.workerPIDs()
        #expect(workerPIDs.count == 2)
        let signalled = Date()
        cluster.router.signal(SIGTERM)
        let answers = inFlight.map { (try? $0.readResponse())?.status ?? -1 }
        let answeredAfter = Date().timeIntervalSince(signalled)
        try waitUntil(15, "router exit") { !cluster.router.isRunning }
        let exitAfter = Date().timeIntervalSince(signalled)
        let (statuses, _, _, _) = load.finish()
        let refused = statuses.filter { $0 == -1 }.count
        let errors = statuses.filter { $0 >= 500 }
        print("SIGTERM under load: 10 in flight → \(answers.filter { $0 == 200 }.count) × 200 (the last \(String(format: "%.2f", answeredAfter)) s after the signal); router exited \(cluster.router.process.terminationStatus) after \(String(format: "%.2f", exitAfter)) s; load: \(statuses.count) requests, \(refused) refused at connect, \(errors.count) 5xx")
        #expect(answers.allSatisfy { $0 == 200 }, "\(answers)")
        #expect(answeredAfter > 0.5, "they were still held upstream when the signal came")
        #expect(cluster.router.process.terminationStatus == 0)
        for pid in workerPIDs { #expect(kill(pid, 0) != 0, "worker \(pid) outlived the router") }
        #expect(errors.isEmpty, "new requests are refused (connection refused or closed), never answered 5xx: \(errors.prefix(5))")
        #expect(refused > 0, "the load kept trying after the listener closed")
    }
}

/// An HTTP/1.1 upstream on loopback that counts requests and answers each
/// 200 after holding it `holdMilliseconds`, one thread per connection.
final class HoldingUpstream: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let hold: UInt32
    private let lock = NSLock()
    private var count = 0
    private var stopped = false

    init(holdMilliseconds: Int) throws {
        self.hold = UInt32(holdMilliseconds * 1000)
        let (fd, port) = try Ports.listen()
        self.port = port
        self.listener = fd
        let box = Box()
        box.upstream = self
        Thread { box.upstream?.acceptLoop() }.start()
    }

    private final class Box: @unchecked Sendable { weak var upstream: HoldingUpstream? }

    var received: Int { self.lock.withLock { self.count } }

    func stop() {
        let first = self.lock.withLock { () -> Bool in
            defer { self.stopped = true }
            return !self.stopped
        }
        if first { shutdown(self.listener, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop() {
        while true {
            let client = accept(self.listener, nil, nil)
            if client < 0 {
                if self.lock.withLock({ self.stopped }) || errno != EINTR { break }
                continue
            }
            Thread { [self] in self.serve(client) }.start()
        }
        close(self.listener)
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 8192)
        var request: [UInt8] = []
        // Keep-alive: one response per request head until the peer closes.
        while true {
            while request.firstRange(of: [13, 10, 13, 10]) == nil {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                request += buffer[0..<n]
            }
            if let end = request.firstRange(of: [13, 10, 13, 10]) { request.removeSubrange(0..<end.upperBound) }
            self.lock.withLock { self.count += 1 }
            usleep(self.hold)
            let body = "{\"held\":true}"
            let response = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
            guard response.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == response.count else { return }
        }
    }
}
