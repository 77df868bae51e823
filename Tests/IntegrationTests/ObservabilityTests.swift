import Foundation
import Shared
import Testing

/// What an operator watches (issue 6): `/metrics` counts exactly what the
/// clients saw, the logs are JSON lines tied to requests by id, and no
/// secret used in a full run reaches any log.
@Suite("Observability: metrics, JSON logs, secrets (real processes)", .serialized)
struct ObservabilityTests {
    @Test func metricsAndLogsMatchWhatClientsSaw() throws {
        let cluster = try GatewayFixture.start()
        defer { cluster.stop() }
        let before = try MetricsScrape.of(cluster)
        #expect(before.sum("portcullis_ready") == 1)
        #expect(before.sum("portcullis_worker_up") == 2)
        #expect(before.sum("portcullis_config_loaded_version") == 1 && before.sum("portcullis_config_changes_total") == 1)

        // A mix of outcomes, tallied as the clients saw them.
        var seen: [Int: Int] = [:]
        var upstreamAnswered = 0
        var failedRequestID = ""
        func send(_ path: String, _ headers: [(String, String)]) throws {
            let response = try cluster.send("GET", path, headers: headers)
            seen[response.status, default: 0] += 1
            if response.status == 200 { upstreamAnswered += 1 }
            if response.status == 502 { failedRequestID = response.header("X-Request-ID") ?? "" }
        }
        for _ in 0..<7 { try send("/orders/1", GatewayFixture.acme()) }
        for _ in 0..<3 { try send("/orders/1", GatewayFixture.identity("acme", "acme-token", token: "pcl_wrong")) }
        for _ in 0..<2 { try send("/orders/1", GatewayFixture.identity("nobody", "nobody-token", token: "x")) }
        for _ in 0..<5 { try send("/orders/1", GatewayFixture.identity("limited", "limited-token", token: GatewayFixture.token("limited"))) }
        try send("/down/1", GatewayFixture.acme())
        let total = seen.values.reduce(0, +)
        #expect(seen[502] == 1 && seen[401] == 5 && (seen[429] ?? 0) >= 1, "\(seen)")

        let after = try MetricsScrape.of(cluster)
        func delta(_ name: String, _ labels: [String: String] = [:]) -> Double { after.sum(name, labels) - before.sum(name, labels) }
        for (status, count) in seen {
            #expect(delta("portcullis_requests_total", ["status": String(status)]) == Double(count), "status \(status)")
        }
        #expect(delta("portcullis_requests_total") == Double(total))
        #expect(delta("portcullis_requests_total", ["status": "502", "reason": "upstream_refused"]) == 1)
        // Every request here reached a worker's decision and ended.
        #expect(delta("portcullis_decision_duration_seconds_count") == Double(total))
        #expect(delta("portcullis_request_duration_seconds_count") == Double(total))
        #expect(delta("portcullis_decision_duration_seconds_sum") > 0)
        // Only the proxied ones have an upstream latency; a refused connect has none.
        #expect(delta("portcullis_upstream_duration_seconds_count", ["collection": "orders"]) == Double(upstreamAnswered))
        #expect(after.sum("portcullis_upstream_duration_seconds_count", ["collection": "down"]) == 0)
        #expect(after.sum("portcullis_worker_in_flight") == 0, "every decision answered")
        // A histogram's buckets are cumulative and end at the count.
        let buckets = after.series("portcullis_decision_duration_seconds_bucket")
        #expect(buckets.first { $0.labels["le"] == "+Inf" }?.value == after.sum("portcullis_decision_duration_seconds_count"))

        // The decision log says the same per reason code.
        try waitUntil(5, "decision log lines") {
            ((try? String(contentsOfFile: cluster.decisionLogPath, encoding: .utf8)) ?? "").split(separator: "\n").count >= total
        }
        var reasons: [String: Int] = [:]
        for line in try String(contentsOfFile: cluster.decisionLogPath, encoding: .utf8).split(separator: "\n") {
            let record = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            reasons["\(record["status"] ?? "")/\(record["reason"] ?? "")", default: 0] += 1
        }
        for (key, count) in reasons {
            let parts = key.split(separator: "/").map(String.init)
            #expect(after.sum("portcullis_requests_total", ["status": parts[0], "reason": parts[1]]) == Double(count), "\(key)")
        }

        // A config change is counted and timestamped.
        let changedAt = Date().timeIntervalSince1970
        let yaml = try String(contentsOfFile: cluster.configPath, encoding: .utf8)
        try (yaml + "\n  - id: newcomer\n    collections: [orders]\n    profiles:\n      - id: newcomer-open\n        auth: { type: none }\n").write(
            toFile: cluster.configPath, atomically: true, encoding: .utf8)
        try waitUntil(5, "version 2 in force") { (try? MetricsScrape.of(cluster).sum("portcullis_config_version")) == 2 }
        let changed = try MetricsScrape.of(cluster)
        #expect(changed.sum("portcullis_config_changes_total") == 2 && changed.sum("portcullis_config_loaded_version") == 2)
        #expect(changed.sum("portcullis_config_last_change_timestamp_seconds") >= changedAt - 1)

        // A killed worker is counted as a restart once it is back.
        let victim = try #require(cluster.workerPIDs().first)
        kill(victim, SIGKILL)
        try waitUntil(5, "the worker respawned") {
            let scrape = try? MetricsScrape.of(cluster)
            return scrape?.sum("portcullis_worker_restarts_total") == 1 && scrape?.sum("portcullis_worker_up") == 2
        }

        // Logs: every stderr line of the router and its workers is one JSON
        // object with the fields a pipeline indexes.
        let lines = cluster.router.stderr.split(separator: "\n")
        #expect(lines.count > 5)
        var processes = Set<String>()
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object != nil, "not a JSON log line: \(line)")
            guard let object else { continue }
            #expect(object["time"] is String && object["level"] is String && object["message"] is String && object["pid"] is Int, "\(line)")
            processes.insert(object["process"] as? String ?? "")
        }
        #expect(processes == ["router", "worker"])
        // The 502 is in the error stream with the id the client got.
        #expect(!failedRequestID.isEmpty)
        let failure = lines.first { $0.contains("\"request_id\":\"\(failedRequestID)\"") }
        #expect(failure?.contains("\"reason\":\"upstream_refused\"") == true, "\(cluster.router.stderr)")
        print("metrics: \(total) requests \(seen), decision log reasons \(reasons)")
    }

    @Test func oidcKeyFetchesAreCounted() throws {
        let setup = try MongoSetup()
        defer { setup.stop() }
        try setup.importModel()
        setup.issuer.setFailing(true)
        let cluster = try setup.startInstance(workers: 1)
        try waitUntil(5, "a failed fetch counted") {
            (try? MetricsScrape.of(cluster).sum("portcullis_oidc_key_fetches_total", ["result": "failure"])) ?? 0 >= 1
        }
        let failing = try MetricsScrape.of(cluster)
        #expect(failing.sum("portcullis_oidc_keys_fetch_failing") == 1)
        #expect(failing.sum("portcullis_oidc_keys_last_success_timestamp_seconds") == 0)
        // The first retry comes 5 s after a failure (KeySourceState).
        setup.issuer.setFailing(false)
        try waitUntil(15, "a successful fetch counted") {
            (try? MetricsScrape.of(cluster).sum("portcullis_oidc_key_fetches_total", ["result": "success"])) ?? 0 >= 1
        }
        let recovered = try MetricsScrape.of(cluster)
        #expect(recovered.sum("portcullis_oidc_keys_fetch_failing") == 0)
        #expect(recovered.sum("portcullis_oidc_keys_last_success_timestamp_seconds") > 0)
        #expect(recovered.sum("portcullis_config_store_up") == 1 && recovered.sum("portcullis_config_from_snapshot") == 0)
    }

    /// `deploy/grafana/portcullis-dashboard.json` queries every metric a
    /// gateway with MongoDB, Redis and an OIDC issuer exports, and nothing
    /// else (a renamed metric would leave a panel silently empty).
    @Test func theDashboardQueriesExactlyTheExportedMetrics() throws {
        let dashboardPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("deploy/grafana/portcullis-dashboard.json").path
        let dashboard = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dashboardPath))) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        var queried = Set<String>()
        let metric = try Regex("portcullis_[a-z_]+")
        for panel in panels where panel["type"] as? String != "row" {
            let targets = try #require(panel["targets"] as? [[String: Any]], "\(panel["title"] ?? "")")
            #expect(!targets.isEmpty)
            for target in targets {
                let expr = try #require(target["expr"] as? String)
                for match in expr.matches(of: metric) {
                    var name = String(expr[match.range])
                    for suffix in ["_bucket", "_count", "_sum"] where name.hasSuffix(suffix) { name.removeLast(suffix.count) }
                    queried.insert(name)
                }
            }
            #expect((panel["datasource"] as? [String: Any])?["uid"] as? String == "${datasource}")
        }

        let setup = try MongoSetup()
        defer { setup.stop() }
        let redis = try RedisServer(directory: setup.directory.appendingPathComponent("redis"))
        defer { redis.stop() }
        try setup.importModel()
        let cluster = try setup.startInstance(workers: 1, environment: ["REDIS_URL": redis.url])
        #expect(setup.call(cluster, "/orders/1", client: "acme", profile: "acme-token", token: MongoSetup.token("acme")) == 200)
        try waitUntil(10, "a key fetch and a Redis sync") {
            let scrape = try? MetricsScrape.of(cluster)
            return (scrape?.sum("portcullis_oidc_key_fetches_total") ?? 0) >= 1 && scrape?.sum("portcullis_quota_redis_up") == 1
        }
        let exported = try MetricsScrape.of(cluster).families
        #expect(queried.subtracting(exported).isEmpty, "on the dashboard, not exported: \(queried.subtracting(exported).sorted())")
        #expect(exported.subtracting(queried).isEmpty, "exported, not on the dashboard: \(exported.subtracting(queried).sorted())")
    }

    /// A full run at trace level that touches every kind of secret the
    /// gateway handles, good and bad, then greps every log it wrote: the
    /// router's and workers' stderr, the decision log, the audit log.
    @Test func noSecretReachesAnyLog() throws {
        let setup = try MongoSetup()
        defer { setup.stop() }
        let redisPassword = "redis-pass-\(UUID().uuidString)"
        let redis = try RedisServer(directory: setup.directory.appendingPathComponent("redis"), password: redisPassword)
        defer { redis.stop() }
        let jwtSecret = "jwt-secret-\(UUID().uuidString)"
        let key = try EncryptionKey(parsing: MongoSetup.encryptionKeyHex)
        let sealedJWT = try SecretValue.encrypt(jwtSecret, key: key)
        let sealedBackend = try SecretValue.encrypt(MongoSetup.backendSecret, key: key)
        let upstream = "http://127.0.0.1:\(setup.upstream.port)"
        let model = """
            collections:
              - id: orders
                upstream: { url: "\(upstream)", credential: backend }
                routes: [ { path_prefix: /orders } ]
            credentials:
              - { id: backend, header: X-Backend-Key, value: "\(sealedBackend)" }
            policies:
              - id: metered
                quotas: [ { limit: 100000, per: day } ]
            clients:
              - id: acme
                collections: [orders]
                policy: metered
                profiles:
                  - id: acme-token
                    auth: { type: token, token_sha256: "\(Crypto.sha256(MongoSetup.token("acme")).hex)" }
                  - id: acme-jwt
                    auth: { type: jwt, secret: "\(sealedJWT)" }
                  - id: acme-sso
                    auth: { type: oidc, issuer: "\(setup.issuer.issuer)", audience: portcullis }
            """
        let file = setup.directory.appendingPathComponent("secrets-model.yaml").path
        try model.write(toFile: file, atomically: true, encoding: .utf8)
        let imported = try CLIRun.portcullis(["config", "import", file], environment: setup.environment)
        #expect(imported.status == 0, "\(imported.stderr)")
        let cluster = try setup.startInstance(
            workers: 2, environment: ["REDIS_URL": redis.url, "PORTCULLIS_LOG_LEVEL": "trace", "CORS_ALLOW_ORIGINS": "*"])

        var secrets: [String: String] = [
            "ENCRYPTION_KEY": MongoSetup.encryptionKeyHex, "client token": MongoSetup.token("acme"), "jwt secret": jwtSecret,
            "backend credential": MongoSetup.backendSecret, "redis password": redisPassword,
        ]
        func call(_ profile: String, _ bearer: String) -> Int {
            setup.call(cluster, "/orders/1", client: "acme", profile: profile, token: bearer)
        }
        /// A JWT and, on its own, its signature: either would be a leak.
        func remember(_ name: String, jwt: String) {
            secrets[name] = jwt
            if let signature = jwt.split(separator: ".").last, signature.count > 16 { secrets[name + " signature"] = String(signature) }
        }
        let now = Int(Date().timeIntervalSince1970)

        #expect(call("acme-token", MongoSetup.token("acme")) == 200)
        let wrongToken = "pcl_wrong-\(UUID().uuidString)"
        secrets["presented wrong token"] = wrongToken
        #expect(call("acme-token", wrongToken) == 401)

        let goodJWT = AuthIntegrationTests.hs(["sub": "acme", "exp": now + 300], secret: jwtSecret)
        remember("jwt", jwt: goodJWT)
        #expect(call("acme-jwt", goodJWT) == 200)
        let forged = AuthIntegrationTests.hs(["sub": "acme", "exp": now + 300], secret: "guessed-\(UUID().uuidString)")
        remember("forged jwt", jwt: forged)
        #expect(call("acme-jwt", forged) == 401)
        let expired = AuthIntegrationTests.hs(["sub": "acme", "exp": now - 3600], secret: jwtSecret)
        remember("expired jwt", jwt: expired)
        #expect(call("acme-jwt", expired) == 401)

        try waitUntil(10, "oidc keys at the workers") {
            let idToken = (try? setup.issuer.token(setup.key, audience: "portcullis", claims: ["sub": "acme"])) ?? ""
            return call("acme-sso", idToken) == 200
        }
        let idToken = try setup.issuer.token(setup.key, audience: "portcullis", claims: ["sub": "acme"])
        remember("id token", jwt: idToken)
        #expect(call("acme-sso", idToken) == 200)
        let otherAudience = try setup.issuer.token(setup.key, audience: "someone-else", claims: ["sub": "acme"])
        remember("id token for another audience", jwt: otherAudience)
        #expect(call("acme-sso", otherAudience) == 401)

        // The management API: admin bearer tokens, a token issued once, a
        // rotation, a credential; a forged admin token is refused.
        let admin = try setup.adminToken(roles: ["admin"])
        remember("admin token", jwt: admin)
        let issuedProfile = try setup.api(
            cluster, "POST", "/api/v1/clients/acme/profiles", token: admin, body: "{\"id\":\"acme-issued\",\"auth\":{\"type\":\"token\"}}")
        let issued = try #require(issuedProfile.json?["token"] as? String, "\(issuedProfile.text)")
        secrets["issued token"] = issued
        try waitUntil(5, "the issued token works") { call("acme-issued", issued) == 200 }
        let rotated = try setup.api(cluster, "POST", "/api/v1/clients/acme/profiles/acme-issued/rotate-token", token: admin)
        let second = try #require(rotated.json?["token"] as? String)
        secrets["rotated token"] = second
        try waitUntil(5, "the rotated token works") { call("acme-issued", second) == 200 }
        #expect(call("acme-issued", issued) == 401)
        let vault = "vault-\(UUID().uuidString)"
        secrets["credential value"] = vault
        let sealedVault = try SecretValue.encrypt(vault, key: key)
        #expect(
            try setup.api(cluster, "POST", "/api/v1/credentials", token: admin, body: "{\"id\":\"vault\",\"header\":\"X-Vault\",\"value\":\"\(sealedVault)\"}")
                .status == 201)
        let refusedPlain = try setup.api(
            cluster, "POST", "/api/v1/credentials", token: admin, body: "{\"id\":\"plain\",\"header\":\"X-P\",\"value\":\"\(vault)-plain\"}")
        #expect(refusedPlain.status == 400)
        let forgedAdmin = AuthIntegrationTests.hs(["sub": "mallory", "roles": ["admin"], "exp": now + 300], secret: "mallory-\(UUID().uuidString)")
        remember("forged admin token", jwt: forgedAdmin)
        #expect(try setup.api(cluster, "GET", "/api/v1/clients", token: forgedAdmin, checkSpec: false).status == 401)

        // Redis away and back: its errors are logged, its password is not.
        redis.kill()
        for _ in 0..<20 { _ = call("acme-token", MongoSetup.token("acme")) }
        try waitUntil(10, "Redis reported down") { cluster.readiness()?["quota_sync"] as? String == "down" }
        try redis.start()
        try waitUntil(10, "Redis reported up") { cluster.readiness()?["quota_sync"] as? String == "up" }
        #expect(call("acme-token", MongoSetup.token("acme")) == 200)

        // The audit log as the API serves it, and every log file.
        let audit = try setup.api(cluster, "GET", "/api/v1/audit?limit=1000", token: admin).text
        #expect(audit.contains("rotate"), "the audit log has the run's changes")
        try waitUntil(5, "decision log written") {
            ((try? String(contentsOfFile: cluster.decisionLogPath, encoding: .utf8)) ?? "").contains("acme-issued")
        }
        let logs: [String: String] = [
            "router and worker stderr": cluster.router.stderr, "router stdout": cluster.router.stdout,
            "decision log": try String(contentsOfFile: cluster.decisionLogPath, encoding: .utf8), "audit log": audit,
        ]
        #expect(cluster.router.stderr.contains("redis unavailable") && cluster.router.stderr.contains("redis back"), "Redis errors were logged")
        var checked = 0
        for (logName, text) in logs {
            // stdout stays empty here: the decision log goes to its file.
            #expect(!text.isEmpty || logName == "router stdout", "\(logName) is empty")
            for (secretName, secret) in secrets {
                #expect(!text.contains(secret), "the \(secretName) is in the \(logName)")
                checked += 1
            }
        }
        print("secrets: \(secrets.count) secrets × \(logs.count) logs (\(logs.values.map(\.utf8.count).reduce(0, +)) bytes) checked, none found")
        #expect(checked == secrets.count * logs.count)
    }
}
