import Foundation
import Shared

/// `portcullis-worker --bench-auth`: what one decision costs per auth type,
/// measured through the same engine the worker runs (every check of SPEC §2
/// including a never-hit rate limit), without sockets. `bench/auth` runs it
/// on a release build. Uncached rows use a fresh token per decision (each is
/// verified in full); cached rows present the same tokens again.
enum AuthBench {
    static func run(iterations: Int, only: String) -> Int32 {
        do {
            try self.measure(iterations: max(100, iterations), only: only)
            return 0
        } catch {
            FileDescriptorOutput.standardError.write("bench-auth failed: \(error)\n")
            return 1
        }
    }

    private static func measure(iterations: Int, only: String) throws {
        let secret = "bench-secret-0123456789abcdef0123"
        let issuer = "http://127.0.0.1:9/realms/bench"
        let rsa = try AsymmetricKey.generate(.rsa)
        let ec = try AsymmetricKey.generate(.ec(.p256))
        let yaml = """
            server: { listen: "127.0.0.1:1", decision_log: "off" }
            collections: [ { id: api, upstream: { url: "http://127.0.0.1:9" }, routes: [ { path_prefix: /api } ] } ]
            policies: [ { id: roomy, rate_limits: [ { limit: 100000000, per: second } ] } ]
            clients:
              - id: bench
                collections: [api]
                policy: roomy
                profiles:
                  - { id: token, auth: { type: token, token_sha256: "\(Crypto.sha256("pcl_bench-token").hex)" } }
                  - { id: hs256, auth: { type: jwt, secret: "$BENCH_SECRET" } }
                  - { id: rs256, auth: { type: oidc, issuer: "\(issuer)", audience: bench, algorithms: [RS256] } }
                  - { id: es256, auth: { type: oidc, issuer: "\(issuer)", audience: bench, algorithms: [ES256] } }
            """
        let config = try ConfigLoader.parse(yaml: yaml)
        let engine = WorkerEngine(workerIndex: 0, environment: ["BENCH_SECRET": secret])
        try engine.apply(WorkerSnapshot.partition(config, version: 1, workerCount: 1, owner: { _ in 0 })[0])
        let jwks = "{\"keys\":[\(rsa.publicJWK(kid: "r", alg: .rs256)),\(ec.publicJWK(kid: "e", alg: .es256))]}"
        _ = engine.applyKeys(
            KeySetMessage(
                source: OIDCKeySource.id(issuer: issuer, jwksURI: nil), version: 1, jwksJSON: Array(jwks.utf8),
                attemptedUnixMs: Int64(Date().timeIntervalSince1970 * 1000)))

        let now = Int(Date().timeIntervalSince1970)
        func claims(_ index: Int, oidc: Bool) -> String {
            oidc
                ? "{\"iss\":\"\(issuer)\",\"aud\":\"bench\",\"sub\":\"u\",\"iat\":\(now),\"exp\":\(now + 3600),\"jti\":\"\(index)\"}"
                : "{\"sub\":\"bench\",\"iat\":\(now),\"exp\":\(now + 3600),\"jti\":\"\(index)\"}"
        }
        // Asymmetric signing is slow; fewer distinct tokens, reused in order.
        let distinct = min(iterations, 2000)

        func request(_ profile: String, _ credential: String) -> DecisionRequest {
            DecisionRequest(clientID: "bench", profileID: profile, method: "GET", path: "/api/x", authorization: "Bearer \(credential)")
        }
        /// Mean microseconds per decision over `requests`; every answer must be an allow.
        func time(_ requests: [DecisionRequest]) throws -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            for request in requests where engine.decide(request).outcome != .allow {
                throw BenchError(message: "\(request.profileID) was not allowed: \(engine.decide(request).reason)")
            }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(requests.count)
        }
        let tokenRequests = Array(repeating: request("token", "pcl_bench-token"), count: iterations)
        // Tokens are minted when a row first needs them, and once: the
        // cached rows must present the very tokens the uncached row verified.
        var minted: [String: [DecisionRequest]] = [:]
        func tokens(_ profile: String) throws -> [DecisionRequest] {
            if let done = minted[profile] { return done }
            let made: [DecisionRequest]
            switch profile {
            case "hs256":
                made = (0..<iterations).map {
                    request(profile, JWSMinter.hmac(.hs256, secret: secret, headerJSON: "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claimsJSON: claims($0, oidc: false)))
                }
            default:
                let (algorithm, kid, key) = profile == "rs256" ? (JWSAlgorithm.rs256, "r", rsa) : (JWSAlgorithm.es256, "e", ec)
                made = try (0..<distinct).map { index in
                    let header = "{\"alg\":\"\(algorithm.rawValue)\",\"kid\":\"\(kid)\"}"
                    return request(profile, try JWSMinter.token(headerJSON: header, claimsJSON: claims(index, oidc: true)) { try key.sign(algorithm, message: $0) })
                }
            }
            minted[profile] = made
            return made
        }
        _ = try time(Array(tokenRequests.prefix(1000)))  // warm-up

        /// `distinct` tokens already verified once, presented again in turn.
        func again(_ requests: [DecisionRequest]) -> [DecisionRequest] {
            (0..<iterations).map { requests[$0 % distinct] }
        }
        /// An operator's change elsewhere (a client added): a new whole
        /// share, which must not cost the cached tokens their verification.
        var version: UInt64 = 1
        func push() throws -> Int {
            version += 1
            let busier = try ConfigLoader.parse(yaml: yaml + "\n  - { id: other-\(version), profiles: [ { id: open-\(version), auth: { type: none } } ] }")
            try engine.apply(WorkerSnapshot.partition(busier, version: version, workerCount: 1, owner: { _ in 0 })[0])
            return distinct
        }
        // Closures, so that rows left out by --only cost nothing.
        let all: [(String, () throws -> Double)] = [
            ("token (SHA-256, constant-time compare)", { try time(tokenRequests) }),
            ("jwt HS256, uncached", { try time(tokens("hs256")) }),
            ("jwt HS256, cached", { try time(again(tokens("hs256"))) }),
            ("oidc RS256 (2048-bit), uncached", { try time(tokens("rs256")) }),
            ("oidc RS256, cached", { try time(again(tokens("rs256"))) }),
            ("oidc RS256, cached, after a config push", { try time(Array(again(tokens("rs256")).prefix(try push()))) }),
            ("oidc ES256 (P-256), uncached", { try time(tokens("es256")) }),
            ("oidc ES256, cached", { try time(again(tokens("es256"))) }),
        ]
        var rows: [(String, Double)] = []
        for (name, measure) in all where name.hasPrefix(only) {
            rows.append((name, try measure()))
        }
        print("worker decision cost per auth type (whole pipeline, one thread, \(iterations) decisions; \(distinct) distinct RS/ES tokens)")
        for (name, micros) in rows {
            print(name.padding(toLength: 42, withPad: " ", startingAt: 0) + String(format: "%9.2f µs/decision", micros))
        }
    }

    struct BenchError: Error, CustomStringConvertible {
        let message: String
        var description: String { self.message }
    }
}
