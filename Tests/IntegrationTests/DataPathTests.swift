import Foundation
import Shared
import Testing

@testable import Router

#if canImport(Glibc)
import Glibc
#endif

/// A real router with two real worker processes and a real upstream, over
/// loopback sockets. Serialized: these tests start processes and some of
/// them measure recovery time, which parallel suites would skew.
@Suite("Gateway data path (real processes)", .serialized)
struct DataPathTests {
    typealias F = GatewayFixture

    private func expectError(
        _ response: HTTPResponse, _ status: Int, _ code: ErrorCode, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(response.status == status, "body: \(response.text)", sourceLocation: sourceLocation)
        #expect(response.json?["error"] as? String == code.rawValue, "body: \(response.text)", sourceLocation: sourceLocation)
        #expect(response.header("Content-Type") == "application/json", sourceLocation: sourceLocation)
        let requestID = response.header("X-Request-ID")
        #expect(requestID != nil && requestID == response.json?["request_id"] as? String, sourceLocation: sourceLocation)
    }

    @Test func everyPipelineRowOverHTTP() throws {
        let cluster = try F.start()
        defer { cluster.stop() }

        let ok = try cluster.send("GET", "/orders/1", headers: F.acme())
        #expect(ok.status == 200, "\(ok.text)")
        #expect(ok.json?["path"] as? String == "/orders/1")

        // 1: identity headers
        expectError(try cluster.send("GET", "/orders/1"), 401, .unauthorized)
        expectError(try cluster.send("GET", "/orders/1", headers: [("X-Client-ID", "acme")]), 401, .unauthorized)
        // 2: unknown client / profile
        expectError(try cluster.send("GET", "/orders/1", headers: F.identity("nobody", "acme-token", token: F.token("acme"))), 401, .unauthorized)
        expectError(try cluster.send("GET", "/orders/1", headers: F.identity("acme", "nothing", token: F.token("acme"))), 401, .unauthorized)
        // 3: a profile of another client, with that client's valid token
        expectError(try cluster.send("GET", "/orders/1", headers: F.identity("acme", "globex-token", token: F.token("globex"))), 403, .forbidden)
        // 4: inactive client, inactive profile
        expectError(try cluster.send("GET", "/orders/1", headers: F.identity("dormant", "dormant-open")), 403, .forbidden)
        expectError(try cluster.send("GET", "/orders/1", headers: F.identity("acme", "acme-off")), 403, .forbidden)
        // 5: loopback is outside 10/8 and 2001:db8::/32
        expectError(try cluster.send("GET", "/orders/1", headers: F.identity("acme", "acme-lan")), 403, .ipNotAllowed)
        // 6: missing, non-Bearer, empty and wrong credentials
        expectError(try cluster.send("GET", "/orders/1", headers: F.identity("acme", "acme-token")), 401, .unauthorized)
        expectError(try cluster.send("GET", "/orders/1", headers: F.identity("acme", "acme-token") + [("Authorization", "Basic YTpi")]), 401, .unauthorized)
        expectError(try cluster.send("GET", "/orders/1", headers: F.identity("acme", "acme-token") + [("Authorization", "Bearer ")]), 401, .unauthorized)
        expectError(try cluster.send("GET", "/orders/1", headers: F.identity("acme", "acme-token", token: "pcl_guess")), 401, .invalidToken)
        expectError(try cluster.send("GET", "/orders/1", headers: F.identity("acme", "acme-token", token: F.token("globex"))), 401, .invalidToken)
        // 6: none needs nothing
        #expect(try cluster.send("GET", "/orders/1", headers: F.identity("acme", "acme-open")).status == 200)
        // 7: method
        let notAllowed = try cluster.send("DELETE", "/orders/1", headers: F.acme())
        expectError(notAllowed, 405, .methodNotAllowed)
        #expect(notAllowed.header("Allow") == "GET, POST, HEAD")
        // 8: no route; a collection the client may not use
        expectError(try cluster.send("GET", "/nowhere", headers: F.acme()), 404, .notFound)
        expectError(try cluster.send("GET", "/ordersx", headers: F.acme()), 404, .notFound)
        expectError(try cluster.send("GET", "/billing/1", headers: F.acme()), 403, .forbidden)

        // 9: rate limit 2/s: two pass, the third is 429 with Retry-After and
        // the draft's headers; a rejected call consumes nothing.
        let limited = F.identity("limited", "limited-token", token: F.token("limited"))
        var statuses: [Int] = []
        var last: HTTPResponse? = nil
        for _ in 0..<4 {
            let response = try cluster.send("GET", "/orders/1", headers: limited)
            statuses.append(response.status)
            last = response
        }
        // Four calls can straddle a token's refill on a slow machine, so
        // allow one extra pass but demand at least one 429.
        #expect(statuses.prefix(2) == [200, 200])
        #expect(statuses.contains(429), "\(statuses)")
        if let last, last.status == 429 {
            expectError(last, 429, .rateLimitExceeded)
            #expect(last.header("Retry-After") == "1")
            #expect(last.header("RateLimit-Policy") == "\"second\";q=2;w=1, \"hour\";q=100;w=3600")
            #expect(last.header("RateLimit")?.hasPrefix("\"second\";r=0;t=") == true)
        }

        // 9: quota 3/day
        // On one connection, so through one router-worker link: from the
        // second answer on, the worker sends it as a template reference
        // (DecisionRef) with its own remaining count, and each header must
        // still say what its own request left.
        let metered = F.identity("metered", "metered-token", token: F.token("metered"))
        let meteredHeaders = metered.map { "\($0.0): \($0.1)\r\n" }.joined()
        let meteredClient = try HTTPClient(port: cluster.port)
        for remaining in [2, 1, 0] {
            try meteredClient.send("GET /orders/1 HTTP/1.1\r\nHost: t\r\n\(meteredHeaders)\r\n")
            let response = try meteredClient.readResponse()
            #expect(response.status == 200)
            #expect(response.header("RateLimit")?.hasPrefix("\"day\";r=\(remaining);t=") == true, "\(response.headers)")
        }
        let overQuota = try cluster.send("GET", "/orders/1", headers: metered)
        expectError(overQuota, 429, .quotaExceeded)
        let retry = Int(overQuota.header("Retry-After") ?? "") ?? 0
        #expect(retry > 0 && retry <= 86_400)
        #expect(overQuota.header("RateLimit-Policy") == "\"day\";q=3;w=86400")

        // The decision log has one JSON line per decision with the fields
        // of SPEC §2, reasons included.
        var lines: [[String: Any]] = []
        try waitUntil(5, "decision log lines") {
            let text = (try? String(contentsOfFile: cluster.decisionLogPath, encoding: .utf8)) ?? ""
            lines = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            return lines.count >= 27
        }
        let reasons = Set(lines.compactMap { $0["reason"] as? String })
        for reason in [
            "allowed", "missing_identity", "unknown_client", "unknown_profile", "client_profile_mismatch", "inactive_client",
            "inactive_profile", "ip_not_allowed", "missing_credential", "token_invalid", "method_not_allowed", "no_route",
            "collection_denied", "rate_limit", "quota",
        ] {
            #expect(reasons.contains(reason), "missing reason \(reason) in \(reasons)")
        }
        let quotaLine = lines.last { $0["reason"] as? String == "quota" }
        #expect(quotaLine?["client_id"] as? String == "metered")
        #expect(quotaLine?["policy_id"] as? String == "three-a-day")
        #expect(quotaLine?["auth_type"] as? String == "token")
        #expect(quotaLine?["collection"] as? String == "orders")
        #expect(quotaLine?["status"] as? Int == 429)
        #expect(quotaLine?["worker"] is Int)
        #expect(quotaLine?["latency_ms"] is Double || quotaLine?["latency_ms"] is Int)
        #expect(quotaLine?["request_id"] as? String == overQuota.header("X-Request-ID"))
    }

    @Test func forwardsConsumerHeadersAndNeverTheClientsAuthorization() throws {
        let cluster = try F.start()
        defer { cluster.stop() }
        let response = try cluster.send(
            "GET", "/orders/7?q=1",
            headers: F.acme([
                ("X-Consumer-Client-ID", "spoofed"), ("X-Backend-Key", "forged"), ("X-Request-ID", "client-rid-42"),
                ("X-Custom", "kept"),
            ]))
        #expect(response.status == 200)
        #expect(response.json?["path"] as? String == "/orders/7?q=1")
        #expect(response.echoed("Authorization").isEmpty)
        #expect(response.echoed("X-Consumer-Client-ID") == ["acme"])
        #expect(response.echoed("X-Consumer-Profile-ID") == ["acme-token"])
        #expect(response.echoed("X-Backend-Key") == [F.backendKey])
        #expect(response.echoed("X-Request-ID") == ["client-rid-42"])
        #expect(response.header("X-Request-ID") == "client-rid-42")
        #expect(response.echoed("X-Custom") == ["kept"])
        #expect(response.echoed("X-Forwarded-For") == ["127.0.0.1"])
        #expect(response.echoed("Host") == ["127.0.0.1:\(cluster.upstream.port)"])

        // strip_prefix, and a generated request id when the client sent none.
        let stripped = try cluster.send("GET", "/status/echo", headers: F.acme())
        #expect(stripped.json?["path"] as? String == "/echo")
        let generated = stripped.header("X-Request-ID") ?? ""
        #expect(!generated.isEmpty && stripped.echoed("X-Request-ID") == [generated])

        // An upstream's own 5xx passes through unchanged.
        let upstream503 = try cluster.send("GET", "/orders/status/503", headers: F.acme())
        #expect(upstream503.status == 503)
        #expect(upstream503.json?["error"] == nil)

        // Bodies stream both ways: Content-Length and chunked requests,
        // a chunked response.
        let body = String(repeating: "x", count: 50_000)
        let posted = try cluster.send("POST", "/orders/new", headers: F.acme(), body: body)
        #expect(posted.json?["body_bytes"] as? Int == 50_000)
        let client = try HTTPClient(port: cluster.port)
        var chunked = "POST /orders/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        for (name, value) in F.acme() { chunked += "\(name): \(value)\r\n" }
        chunked += "\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        try client.send(chunked)
        #expect(try client.readResponse().json?["body_bytes"] as? Int == 11)
        try client.send("GET /orders/stream/5 HTTP/1.1\r\nHost: t\r\n" + F.acme().map { "\($0.0): \($0.1)\r\n" }.joined() + "\r\n")
        let streamed = try client.readResponse()
        #expect(streamed.status == 200)
        #expect(streamed.body.count > 0)
        // HEAD gets the head only; the connection stays usable after it.
        try client.send("HEAD /orders/1 HTTP/1.1\r\nHost: t\r\n" + F.acme().map { "\($0.0): \($0.1)\r\n" }.joined() + "\r\n")
        #expect(try client.readResponse(head: true).status == 200)
        try client.send("GET /orders/after-head HTTP/1.1\r\nHost: t\r\n" + F.acme().map { "\($0.0): \($0.1)\r\n" }.joined() + "\r\n")
        #expect(try client.readResponse().json?["path"] as? String == "/orders/after-head")
    }

    @Test func xForwardedForIsHonouredOnlyFromTrustedProxies() throws {
        let cluster = try F.start()
        defer { cluster.stop() }
        let request = "GET /orders/1 HTTP/1.1\r\nHost: t\r\nX-Client-ID: acme\r\nX-Profile-ID: acme-xff\r\nX-Forwarded-For: 203.0.113.50\r\nConnection: close\r\n\r\n"
        // From 127.0.0.1 (not trusted) the header is a claim, not a fact.
        let direct = try HTTPClient(port: cluster.port)
        try direct.send(request)
        expectError(try direct.readResponse(), 403, .ipNotAllowed)
        // From 127.0.0.2 (trusted) the client address is 203.0.113.50.
        let proxied = try HTTPClient(port: cluster.port, source: "127.0.0.2")
        try proxied.send(request)
        let response = try proxied.readResponse()
        #expect(response.status == 200, "\(response.text)")
        #expect(response.echoed("X-Forwarded-For") == ["203.0.113.50, 127.0.0.2"])
        // Walking from the right, a spoofed left-most entry does not help.
        let chained = try HTTPClient(port: cluster.port, source: "127.0.0.2")
        try chained.send(request.replacingOccurrences(of: "203.0.113.50", with: "203.0.113.50, 198.51.100.1"))
        expectError(try chained.readResponse(), 403, .ipNotAllowed)
    }

    @Test func keepAliveAndPipelinedRequestsAnswerInOrder() throws {
        let cluster = try F.start()
        defer { cluster.stop() }
        let client = try HTTPClient(port: cluster.port)
        let headers = F.acme().map { "\($0.0): \($0.1)\r\n" }.joined()
        // Three requests in one write, one of them denied by a worker and
        // one slow upstream answer first in line.
        let pipeline = ["/orders/delay/150", "/nowhere", "/orders/third"].map { "GET \($0) HTTP/1.1\r\nHost: t\r\n\(headers)\r\n" }.joined()
        try client.send(pipeline)
        let first = try client.readResponse()
        let second = try client.readResponse()
        let third = try client.readResponse()
        #expect(first.status == 200)
        #expect(first.json?["path"] as? String == "/orders/delay/150")
        #expect(second.status == 404)
        #expect(third.json?["path"] as? String == "/orders/third")
        // Same connection, later request.
        try client.send("GET /orders/fourth HTTP/1.1\r\nHost: t\r\n\(headers)\r\n")
        #expect(try client.readResponse().json?["path"] as? String == "/orders/fourth")
        // HTTP/1.0 without keep-alive: answered, then closed.
        try client.send("GET /orders/five HTTP/1.0\r\n\(headers)\r\n")
        #expect(try client.readResponse().status == 200)
        #expect(client.readUntilClosed())
    }

    @Test func oversizedAndMalformedRequestsNeverReachAWorker() throws {
        let cluster = try F.start()
        defer { cluster.stop() }
        let headers = F.acme().map { "\($0.0): \($0.1)\r\n" }.joined()

        // 431: one header beyond max_header_bytes (4096); answered and closed.
        let big = try HTTPClient(port: cluster.port)
        try big.send("GET /orders/1 HTTP/1.1\r\nHost: t\r\n\(headers)X-Big: \(String(repeating: "a", count: 5000))\r\n\r\n")
        let tooLarge = try big.readResponse()
        expectError(tooLarge, 431, .headersTooLarge)
        #expect(big.readUntilClosed())

        // 413: a declared body over max_body_bytes (65536), before any byte
        // of it is read; and a chunked body that grows past it.
        let declared = try HTTPClient(port: cluster.port)
        try declared.send("POST /orders/1 HTTP/1.1\r\nHost: t\r\n\(headers)Content-Length: 70000\r\n\r\n")
        expectError(try declared.readResponse(), 413, .payloadTooLarge)
        let chunked = try HTTPClient(port: cluster.port)
        try chunked.send("POST /orders/1 HTTP/1.1\r\nHost: t\r\n\(headers)Transfer-Encoding: chunked\r\n\r\n")
        let piece = String(repeating: "z", count: 16_384)
        var answered: HTTPResponse? = nil
        for _ in 0..<6 {
            // The gateway may answer and close before the last piece.
            guard (try? chunked.send("4000\r\n\(piece)\r\n")) != nil else { break }
        }
        answered = try chunked.readResponse()
        #expect(answered?.status == 413)

        // 400s: garbage, request smuggling shapes, bad targets.
        for bad in [
            "\u{16}\u{03}\u{01}\u{00}garbage\r\n\r\n",
            "GET /orders/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /orders/1 HTTP/1.1\r\nHost : t\r\n\r\n",
            "GET /orders/../admin HTTP/1.1\r\nHost: t\r\n\r\n",
        ] {
            let client = try HTTPClient(port: cluster.port)
            try client.send(bad)
            let response = try client.readResponse()
            #expect(response.status == 400, "\(bad.debugDescription) -> \(response.status)")
            #expect(response.header("X-Request-ID") != nil)
        }

        // 408: a head that never completes is answered after
        // header_timeout_ms (400) and closed.
        let slow = try HTTPClient(port: cluster.port)
        try slow.send("GET /orders/1 HTTP/1.1\r\nHost: t\r\n")
        expectError(try slow.readResponse(), 408, .requestTimeout)
        #expect(slow.readUntilClosed())

        // None of those reached a worker: the decision log holds only the
        // router's own parser-level answers, and every process still runs.
        #expect(cluster.router.isRunning)
        #expect(cluster.workerPIDs().count == 2)
        #expect(try cluster.send("GET", "/orders/1", headers: F.acme()).status == 200)
    }

    @Test func upstreamFailuresAre502And504() throws {
        let cluster = try F.start()
        defer { cluster.stop() }
        expectError(try cluster.send("GET", "/down/1", headers: F.acme()), 502, .badGateway)
        // timeout_ms 300 against a 2 s upstream delay.
        let started = Date()
        expectError(try cluster.send("GET", "/slow/delay/2000", headers: F.acme()), 504, .upstreamTimeout)
        #expect(Date().timeIntervalSince(started) < 1.9)
        // An upstream that drops the connection mid-request.
        expectError(try cluster.send("GET", "/orders/drop", headers: F.acme()), 502, .badGateway)
        // And the pool recovers: the next request is fine.
        #expect(try cluster.send("GET", "/orders/1", headers: F.acme()).status == 200)
    }

    @Test func killedWorkerAnswers503ThenRecoversWhileOtherWorkersClientsSeeNoError() throws {
        let cluster = try F.start(workers: 2)
        defer { cluster.stop() }
        let ring = ShardRing(count: 2)
        let victimIndex = ring.worker(for: "acme")
        let bystanders = F.crowd.filter { ring.worker(for: $0) != victimIndex }.prefix(50)
        #expect(bystanders.count == 50)

        let workersBefore = cluster.readiness()?["workers"] as? [[String: Any]] ?? []
        guard let victim = workersBefore.first(where: { $0["index"] as? Int == victimIndex }), let pid = victim["pid"] as? Int else {
            Issue.record("no worker \(victimIndex) in /readyz")
            return
        }

        // 50 clients of the other worker, each on its own keep-alive
        // connection, call in a loop across the kill and the respawn.
        let stop = Atomic(false)
        let failures = Atomic(0)
        let successes = Atomic(0)
        let group = DispatchGroup()
        let port = cluster.port
        for client in bystanders {
            DispatchQueue.global().async(group: group) {
                do {
                    let connection = try HTTPClient(port: port)
                    let request = "GET /orders/1 HTTP/1.1\r\nHost: t\r\nX-Client-ID: \(client)\r\nX-Profile-ID: \(client)-token\r\nAuthorization: Bearer \(F.token(client))\r\n\r\n"
                    while !stop.load() {
                        try connection.send(request)
                        if try connection.readResponse().status == 200 { successes.add(1) } else { failures.add(1) }
                    }
                } catch {
                    failures.add(1)
                }
            }
        }
        try waitUntil(10, "bystanders under way") { successes.load() >= 100 }

        kill(pid_t(pid), SIGKILL)
        // At once: the dead worker's clients get 503 worker_unavailable,
        // never a hang (the first respawn waits 100 ms).
        let during = try cluster.send("GET", "/orders/1", headers: F.acme())
        expectError(during, 503, .workerUnavailable)
        let killedAt = Date()

        // Then the respawned worker serves them again.
        var recovered: Date? = nil
        try waitUntil(5, "respawned worker to serve acme") {
            guard (try? cluster.send("GET", "/orders/1", headers: F.acme()))?.status == 200 else { return false }
            recovered = Date()
            return true
        }
        let workersAfter = cluster.readiness()?["workers"] as? [[String: Any]] ?? []
        let respawned = workersAfter.first { $0["index"] as? Int == victimIndex }
        #expect(respawned?["pid"] as? Int != pid)
        #expect(respawned?["restarts"] as? Int == 1)
        let recoveryMs = (recovered ?? .distantFuture).timeIntervalSince(killedAt) * 1000
        // 100 ms backoff + spawn + handshake + config: well under a second.
        #expect(recoveryMs < 1000, "recovered after \(Int(recoveryMs)) ms")

        let afterKill = successes.load()
        try waitUntil(10, "bystanders after recovery") { successes.load() >= afterKill + 100 }
        stop.store(true)
        group.wait()
        #expect(failures.load() == 0, "bystander failures: \(failures.load())")
        try waitUntil(10, "ready again") { cluster.readiness()?["ready"] as? Bool == true }

        // Every thread of every worker, the respawned one included, runs
        // under SCHED_BATCH (WorkerScheduling), the router under the default.
        let pids = cluster.workerPIDs()
        #expect(pids.count == 2)
        for pid in pids {
            let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            #expect(threads.count >= 2, "worker \(pid) threads: \(threads)")
            for thread in threads.compactMap({ Int32($0) }) {
                #expect(sched_getscheduler(thread) == 3, "worker \(pid) thread \(thread) is not SCHED_BATCH")
            }
        }
        #expect(sched_getscheduler(cluster.router.pid) == SCHED_OTHER)
    }

    @Test func configFileChangesApplyWithoutARestart() throws {
        let cluster = try F.start()
        defer { cluster.stop() }
        #expect(try cluster.send("GET", "/orders/1", headers: F.acme()).status == 200)
        let version = cluster.readiness()?["config_version"] as? Int ?? 0
        let original = try String(contentsOfFile: cluster.configPath, encoding: .utf8)

        // A file that fails validation is rejected; the old model stays.
        try (original + "\nbogus_key: 1\n").write(toFile: cluster.configPath, atomically: true, encoding: .utf8)
        try waitUntil(5, "rejection logged") { cluster.router.stderr.contains("bogus_key") }
        #expect(cluster.readiness()?["config_version"] as? Int == version)
        #expect(try cluster.send("GET", "/orders/1", headers: F.acme()).status == 200)

        // So is a file emptied in place (as `> portcullis.yaml` leaves it
        // before the writer writes): not the all-defaults model, which has
        // no clients.
        try "# rewriting\n".write(toFile: cluster.configPath, atomically: false, encoding: .utf8)
        try waitUntil(5, "empty file rejected") { cluster.router.stderr.contains("holds no YAML document") }
        #expect(cluster.readiness()?["config_version"] as? Int == version)
        #expect(try cluster.send("GET", "/orders/1", headers: F.acme()).status == 200)

        // A collection's new upstream applies to the router's loops, whose
        // last-route caches were just filled with the old one.
        for _ in 0..<4 { #expect(try cluster.send("GET", "/status/200", headers: F.acme()).status == 200) }
        let moved = original.replacingOccurrences(
            of: "  - id: status\n    upstream: { url: \"\(cluster.upstreamURL)\" }",
            with: "  - id: status\n    upstream: { url: \"http://127.0.0.1:\(cluster.deadPort)\" }")
        #expect(moved != original)
        try moved.write(toFile: cluster.configPath, atomically: true, encoding: .utf8)
        try waitUntil(5, "moved upstream's config version") { (cluster.readiness()?["config_version"] as? Int ?? 0) > version }
        let movedVersion = cluster.readiness()?["config_version"] as? Int ?? 0
        for _ in 0..<4 { expectError(try cluster.send("GET", "/status/200", headers: F.acme()), 502, .badGateway) }
        #expect(try cluster.send("GET", "/orders/1", headers: F.acme()).status == 200)

        // A valid change (acme deactivated) applies to every worker.
        let changed = moved.replacingOccurrences(of: "  - id: acme\n", with: "  - id: acme\n    status: inactive\n")
        #expect(changed != moved)
        try changed.write(toFile: cluster.configPath, atomically: true, encoding: .utf8)
        try waitUntil(5, "new config version") { (cluster.readiness()?["config_version"] as? Int ?? 0) > movedVersion }
        expectError(try cluster.send("GET", "/orders/1", headers: F.acme()), 403, .forbidden)
    }

    // SIGTERM with requests in flight: FaultTests.sigtermUnderLoadCompletesInFlightAndRefusesCleanly
    // (an upstream that holds the requests proves they are in flight at the signal).
}

/// A lock-protected value for the load threads of one test.
final class Atomic<Value: Sendable>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func load() -> Value { self.lock.withLock { self.value } }
    func store(_ value: Value) { self.lock.withLock { self.value = value } }
    func mutate(_ body: (inout Value) -> Void) { self.lock.withLock { body(&self.value) } }
}

extension Atomic where Value == Int {
    func add(_ delta: Int) { self.lock.withLock { self.value += delta } }
}
