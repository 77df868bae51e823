import Shared

@testable import Worker

/// A clock the test moves by hand: monotonic nanoseconds for buckets, UTC
/// seconds for quota windows.
final class ManualClock: DecisionClock {
    var time: DecisionTime

    init(unixSeconds: Int64 = 1_767_225_600 /* 2026-01-01T00:00:00Z */) {
        self.time = DecisionTime(monotonicNanos: 1_000_000_000, unixSeconds: unixSeconds)
    }

    func now() -> DecisionTime { self.time }

    func advance(nanos: UInt64) {
        self.time.monotonicNanos += nanos
        self.time.unixSeconds += Int64(nanos / 1_000_000_000)
    }

    func advance(seconds: Int) { self.advance(nanos: UInt64(seconds) * 1_000_000_000) }
}

enum Fixture {
    static let token = "pcl_pipeline-test-token"
    static let tokenHash = Crypto.sha256(token).hex

    /// Covers every row of SPEC §2 for `token` and `none`: two clients with
    /// token profiles (one with an IP allowlist and methods), an inactive
    /// client and profile, a `none` profile, two collections.
    static let yaml = """
        server:
          listen: "127.0.0.1:8080"
          decision_log: off
        collections:
          - id: orders
            upstream: { url: "http://127.0.0.1:9000" }
            routes: [ { path_prefix: /orders }, { path_prefix: /v2/orders, strip_prefix: true } ]
          - id: billing
            upstream: { url: "http://127.0.0.1:9001" }
            routes: [ { path_prefix: /billing } ]
        policies:
          - id: tight
            rate_limits: [ { limit: 2, per: second }, { limit: 5, per: minute } ]
          - id: quota
            quotas: [ { limit: 3, per: day } ]
        clients:
          - id: acme
            collections: [orders]
            policy: tight
            profiles:
              - id: acme-token
                auth: { type: token, token_sha256: "\(tokenHash)" }
                allowed_methods: [GET, POST]
                allowed_ips: ["10.0.0.0/24", "192.168.1.100", "2001:db8::/32"]
              - id: acme-open
                auth: { type: none }
              - id: acme-off
                status: inactive
                auth: { type: none }
          - id: globex
            collections: [orders, billing]
            policy: quota
            profiles:
              - id: globex-token
                auth: { type: token, token_sha256: "\(tokenHash)" }
          - id: dormant
            status: inactive
            collections: [orders]
            profiles:
              - id: dormant-open
                auth: { type: none }
        """

    static func engine(clock: ManualClock, yaml: String = Fixture.yaml) throws -> WorkerEngine {
        let config = try ConfigLoader.parse(yaml: yaml)
        let engine = WorkerEngine(workerIndex: 0, clock: clock)
        let snapshots = WorkerSnapshot.partition(config, version: 1, workerCount: 1, owner: { _ in 0 })
        try engine.apply(snapshots[0])
        return engine
    }

    static func request(
        client: String = "acme", profile: String = "acme-token", method: String = "GET",
        path: String = "/orders/1", ip: String? = "10.0.0.7", authorization: String = "Bearer \(token)"
    ) -> DecisionRequest {
        DecisionRequest(
            clientID: client, profileID: profile, method: method, path: path,
            sourceIP: ip.flatMap { IPAddress($0) }, authorization: authorization)
    }
}
