import Foundation
import Shared
import Testing

@testable import Router

/// What the MongoDB and management-API tests share: a real nx-27017, a
/// real OIDC issuer for admin tokens, one demo upstream, the model imported
/// with `portcullis config import`, and gateway instances in MongoDB mode.
final class MongoSetup {
    static let encryptionKeyHex = "3f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
    static let backendSecret = "backend-secret-in-mongo"
    static let audience = "portcullis-admin"
    static func token(_ name: String) -> String { "pcl_mongo-it-\(name)" }

    let directory: URL
    let mongo: MongoServer
    let issuer: OIDCIssuer
    let key: OIDCIssuer.SigningKey
    let upstream: Upstream
    let spec: OpenAPIDocument
    private(set) var instances: [Cluster] = []

    var environment: [String: String] { ["MONGODB_URI": self.mongo.uri, "ENCRYPTION_KEY": Self.encryptionKeyHex] }

    init() throws {
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("portcullis-mongo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.mongo = try MongoServer(directory: self.directory)
        self.key = OIDCIssuer.SigningKey(kid: "admin-1", key: try AsymmetricKey.generate(.rsa), alg: .rs256)
        self.issuer = try OIDCIssuer(keys: [self.key])
        self.upstream = try Upstream(directory: self.directory)
        self.spec = try OpenAPIDocument()
    }

    /// The documents every test starts from (sealed once: a fresh nonce
    /// per call would make each call's text differ).
    func modelYAML() throws -> String {
        if let cached = self.cachedModel { return cached }
        let sealed = try SecretValue.encrypt(Self.backendSecret, key: EncryptionKey(parsing: Self.encryptionKeyHex))
        let upstream = "http://127.0.0.1:\(self.upstream.port)"
        self.cachedModel = """
            collections:
              - id: orders
                upstream: { url: "\(upstream)", credential: backend }
                routes: [ { path_prefix: /orders } ]
              - id: reports
                upstream: { url: "\(upstream)" }
                routes: [ { path_prefix: /reports } ]
            credentials:
              - { id: backend, header: X-Backend-Key, value: "\(sealed)" }
            policies:
              - id: standard
                rate_limits: [ { limit: 5000, per: second } ]
            clients:
              - id: acme
                collections: [orders, reports]
                policy: standard
                profiles:
                  - id: acme-token
                    auth: { type: token, token_sha256: "\(Crypto.sha256(Self.token("acme")).hex)" }
              - id: steady
                collections: [orders]
                profiles:
                  - id: steady-token
                    auth: { type: token, token_sha256: "\(Crypto.sha256(Self.token("steady")).hex)" }
            """
        return self.cachedModel ?? ""
    }
    private var cachedModel: String?

    func importModel() throws {
        let file = self.directory.appendingPathComponent("model.yaml").path
        try self.modelYAML().write(toFile: file, atomically: true, encoding: .utf8)
        let run = try CLIRun.portcullis(["config", "import", file], environment: self.environment)
        guard run.status == 0 else { throw HarnessError("config import failed: \(run.stderr)") }
    }

    /// A gateway instance whose model lives in MongoDB.
    @discardableResult
    func startInstance(workers: Int = 2, extraServer: String = "", rolesClaim: String = "roles", environment: [String: String] = [:]) throws -> Cluster {
        let issuer = self.issuer.issuer
        var env = self.environment
        for (k, v) in environment { env[k] = v }
        let cluster = try Cluster(workers: workers, environment: env) { cluster in
            cluster.serverBlock(
                extra: """
                      admin: { issuer: "\(issuer)", audience: \(Self.audience), roles_claim: "\(rolesClaim)" }
                    \(extraServer)
                    """)
        }
        self.instances.append(cluster)
        return cluster
    }

    func adminToken(roles: [String], sub: String = "alice", extra: [String: Any] = [:]) throws -> String {
        var claims: [String: Any] = ["sub": sub, "roles": roles]
        claims.merge(extra) { $1 }
        return try self.issuer.token(self.key, audience: Self.audience, claims: claims)
    }

    /// One management-API call; every answer is checked against the
    /// OpenAPI document (a test fails on any mismatch).
    @discardableResult
    func api(
        _ cluster: Cluster, _ method: String, _ path: String, token: String?, body: String? = nil, headers: [(String, String)] = [],
        checkSpec: Bool = true
    ) throws -> HTTPResponse {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: admin.test\r\nUser-Agent: portcullis-it\r\n"
        if let token { text += "Authorization: Bearer \(token)\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        text += "Connection: close\r\n\r\n" + (body ?? "")
        let response = try HTTPClient.request(port: cluster.adminPort, text)
        if checkSpec {
            let problems = self.spec.problems(method: method, path: path, status: response.status, body: response.body)
            #expect(problems.isEmpty, "\(method) \(path) → \(response.status): \(problems) \(response.text)")
        }
        return response
    }

    /// A gateway request with a token profile's identity.
    func call(_ cluster: Cluster, _ path: String, client: String, profile: String, token: String) -> Int {
        let response = try? cluster.send(
            "GET", path, headers: [("X-Client-ID", client), ("X-Profile-ID", profile), ("Authorization", "Bearer \(token)")])
        return response?.status ?? -1
    }

    /// Seconds from `start` until `condition` holds on every instance
    /// (polled every 5 ms, up to `limit`); nil if it never did.
    func propagation(_ instances: [Cluster], since start: Date, limit: Double = 5, _ condition: (Cluster) -> Bool) -> Double? {
        var pending = instances.map { _ in true }
        let deadline = start.addingTimeInterval(limit)
        while Date() < deadline {
            for (i, cluster) in instances.enumerated() where pending[i] && condition(cluster) { pending[i] = false }
            if !pending.contains(true) { return Date().timeIntervalSince(start) }
            usleep(5_000)
        }
        return nil
    }

    func stop() {
        for instance in self.instances { instance.stop() }
        self.upstream.child.stop()
        self.issuer.stop()
        self.mongo.stop()
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }
}

/// Keeps requesting one client's route on every instance from a thread
/// until stopped; counts answers other than 200 (bounded: at most
/// `maxRequests`).
final class SteadyTraffic: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private(set) var sent = 0
    private(set) var failures: [String] = []
    private let thread: Thread

    init(_ instances: [Cluster], client: String, profile: String, token: String, maxRequests: Int = 20_000) {
        let box = Box()
        let ports = instances.map(\.port)
        let request = "GET /orders/steady HTTP/1.1\r\nHost: gateway.test\r\nX-Client-ID: \(client)\r\nX-Profile-ID: \(profile)\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n"
        self.thread = Thread {
            guard let traffic = box.traffic else { return }
            var i = 0
            while i < maxRequests {
                traffic.lock.lock()
                let stop = traffic.stopped
                traffic.lock.unlock()
                if stop { break }
                let status = (try? HTTPClient.request(port: ports[i % ports.count], request))?.status ?? -1
                traffic.lock.lock()
                traffic.sent += 1
                if status != 200 { traffic.failures.append("instance \(i % ports.count): \(status)") }
                traffic.lock.unlock()
                i += 1
                usleep(2_000)
            }
        }
        box.traffic = self
        self.thread.start()
    }

    private final class Box: @unchecked Sendable { weak var traffic: SteadyTraffic? }

    /// Requests answered so far.
    var count: Int {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.sent
    }

    /// Stops and returns (sent, failures).
    func finish() -> (Int, [String]) {
        self.lock.lock()
        self.stopped = true
        self.lock.unlock()
        while !self.thread.isFinished { usleep(5_000) }
        self.lock.lock()
        defer { self.lock.unlock() }
        return (self.sent, self.failures)
    }
}
