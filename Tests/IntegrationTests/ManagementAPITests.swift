import Foundation
import Shared
import Testing

@testable import Router

/// The management API (SPEC §6, §9) over real sockets, with admin tokens
/// from a real OIDC issuer and the model in a real nx-27017: roles, audit,
/// secrets, the OpenAPI document, the CLI, and file mode.
@Suite("Management API (real OIDC issuer, nx-27017, gateways)", .serialized)
struct ManagementAPITests {
    struct Endpoint {
        let method: String
        let path: String
        let body: String?
        var isAudit: Bool { self.path.hasPrefix("/api/v1/audit") }
    }

    /// Every endpoint of SPEC §9 with each method it takes.
    static let endpoints: [Endpoint] = {
        var list: [Endpoint] = []
        let bodies = [
            "clients": "{\"id\":\"role-probe\",\"collections\":[\"orders\"],\"profiles\":[]}",
            "policies": "{\"id\":\"role-probe\",\"rate_limits\":[{\"limit\":10,\"per\":\"second\"}]}",
            "collections": "{\"id\":\"role-probe\",\"upstream\":{\"url\":\"http://127.0.0.1:9\"},\"routes\":[{\"path_prefix\":\"/role-probe\"}]}",
            "credentials": "{\"id\":\"role-probe\",\"header\":\"X-Probe\",\"value\":\"$PROBE_VALUE\"}",
        ]
        for kind in ["clients", "policies", "collections", "credentials"] {
            list.append(Endpoint(method: "GET", path: "/api/v1/\(kind)", body: nil))
            list.append(Endpoint(method: "POST", path: "/api/v1/\(kind)", body: bodies[kind]))
            let one = kind == "clients" ? "acme" : kind == "policies" ? "standard" : kind == "collections" ? "reports" : "backend"
            list.append(Endpoint(method: "GET", path: "/api/v1/\(kind)/\(one)", body: nil))
            list.append(Endpoint(method: "PUT", path: "/api/v1/\(kind)/ghost", body: "{}"))
            list.append(Endpoint(method: "PATCH", path: "/api/v1/\(kind)/ghost", body: "{}"))
            list.append(Endpoint(method: "DELETE", path: "/api/v1/\(kind)/ghost", body: nil))
        }
        list.append(Endpoint(method: "GET", path: "/api/v1/clients/acme/profiles", body: nil))
        list.append(Endpoint(method: "POST", path: "/api/v1/clients/ghost/profiles", body: "{\"id\":\"p\",\"auth\":{\"type\":\"none\"}}"))
        list.append(Endpoint(method: "GET", path: "/api/v1/clients/acme/profiles/acme-token", body: nil))
        list.append(Endpoint(method: "PUT", path: "/api/v1/clients/acme/profiles/ghost", body: "{}"))
        list.append(Endpoint(method: "PATCH", path: "/api/v1/clients/acme/profiles/ghost", body: "{}"))
        list.append(Endpoint(method: "DELETE", path: "/api/v1/clients/acme/profiles/ghost", body: nil))
        list.append(Endpoint(method: "POST", path: "/api/v1/clients/acme/profiles/ghost/rotate-token", body: nil))
        list.append(Endpoint(method: "GET", path: "/api/v1/audit", body: nil))
        list.append(Endpoint(method: "DELETE", path: "/api/v1/audit/ghost", body: nil))
        return list
    }()

    /// SPEC §6, written out rather than taken from the implementation.
    static func allowed(_ role: String, _ endpoint: Endpoint) -> Bool {
        switch (role, endpoint.isAudit, endpoint.method) {
        case ("admin", _, _): return true
        case ("auditor", true, "GET"): return true
        case ("viewer", false, "GET"), ("modifier", false, _): return true
        default: return false
        }
    }

    @Test func everyRoleAgainstEveryEndpoint() throws {
        let setup = try MongoSetup()
        defer { setup.stop() }
        try setup.importModel()
        let cluster = try setup.startInstance(workers: 1, environment: ["PROBE_VALUE": "probe"])
        var rows = 0
        for role in ["viewer", "modifier", "auditor", "admin"] {
            let token = try setup.adminToken(roles: [role], sub: "\(role)-user")
            for endpoint in Self.endpoints {
                let response = try setup.api(cluster, endpoint.method, endpoint.path, token: token, body: endpoint.body)
                if Self.allowed(role, endpoint) {
                    #expect(![401, 403].contains(response.status), "\(role) \(endpoint.method) \(endpoint.path): \(response.status) \(response.text)")
                } else {
                    #expect(response.status == 403, "\(role) \(endpoint.method) \(endpoint.path): \(response.status) \(response.text)")
                    #expect(response.json?["error"] as? String == "forbidden")
                }
                rows += 1
                // Undo creations so the next role's POST is a create again.
                if response.status == 201, let id = response.json?["id"] as? String {
                    let cleanup = try setup.api(cluster, "DELETE", endpoint.path + "/" + id, token: try setup.adminToken(roles: ["admin"]))
                    #expect(cleanup.status == 204)
                }
            }
        }
        #expect(rows == 4 * Self.endpoints.count)

        // No token, a garbage token, another audience, an expired token,
        // a token signed by a key the issuer never published: 401 on every endpoint.
        let stranger = OIDCIssuer.SigningKey(kid: "admin-1", key: try AsymmetricKey.generate(.rsa), alg: .rs256)
        let now = Int(Date().timeIntervalSince1970)
        let bad: [(String, String?)] = [
            ("none", nil), ("garbage", "not-a-token"),
            ("audience", try setup.issuer.token(setup.key, audience: "someone-else", claims: ["roles": ["admin"]])),
            ("expired", try setup.issuer.token(setup.key, audience: MongoSetup.audience, claims: ["roles": ["admin"], "exp": now - 120])),
            ("forged", try setup.issuer.token(stranger, audience: MongoSetup.audience, claims: ["roles": ["admin"]])),
        ]
        for (name, token) in bad {
            for endpoint in Self.endpoints {
                let response = try setup.api(cluster, endpoint.method, endpoint.path, token: token, body: endpoint.body)
                #expect(response.status == 401, "\(name) \(endpoint.method) \(endpoint.path): \(response.status)")
            }
        }
        // No roles at all: 403.
        let roleless = try setup.adminToken(roles: [])
        #expect(try setup.api(cluster, "GET", "/api/v1/clients", token: roleless).status == 403)
        // Keycloak's realm_access.roles when the instance is told so.
        let keycloak = try setup.startInstance(workers: 1, rolesClaim: "realm_access.roles")
        let kcToken = try setup.issuer.token(
            setup.key, audience: MongoSetup.audience, claims: ["sub": "kc-user", "realm_access": ["roles": ["viewer"]]])
        #expect(try setup.api(keycloak, "GET", "/api/v1/clients", token: kcToken).status == 200)
        #expect(try setup.api(keycloak, "DELETE", "/api/v1/clients/acme", token: kcToken).status == 403)
    }

    @Test func auditEntriesAndSecretsNeverRead() throws {
        let setup = try MongoSetup()
        defer { setup.stop() }
        try setup.importModel()
        let cluster = try setup.startInstance(workers: 1)
        let admin = try setup.adminToken(roles: ["admin"], sub: "alice")
        let service = try setup.adminToken(roles: ["modifier"], sub: "ci-bot", extra: ["client_id": "ci-bot"])
        let auditor = try setup.adminToken(roles: ["auditor"], sub: "audrey")
        let key = try EncryptionKey(parsing: MongoSetup.encryptionKeyHex)
        let vaultSecret = "vault-plaintext-\(UUID().uuidString)"
        let sealed = try SecretValue.encrypt(vaultSecret, key: key)

        // Create a credential: the answer and every read show [redacted].
        let created = try setup.api(
            cluster, "POST", "/api/v1/credentials", token: service, body: "{\"id\":\"vault\",\"header\":\"X-Vault\",\"value\":\"\(sealed)\"}")
        #expect(created.status == 201, "\(created.text)")
        #expect(created.json?["value"] as? String == "[redacted]")
        let read = try setup.api(cluster, "GET", "/api/v1/credentials/vault", token: admin)
        #expect(read.json?["value"] as? String == "[redacted]")
        let list = try setup.api(cluster, "GET", "/api/v1/credentials", token: admin)
        #expect(!list.text.contains("enc:v1") && !list.text.contains(vaultSecret))
        // PUT with [redacted] keeps the stored ciphertext.
        let updated = try setup.api(
            cluster, "PUT", "/api/v1/credentials/vault", token: admin, body: "{\"header\":\"X-Vault-Key\",\"value\":\"[redacted]\"}")
        #expect(updated.status == 200, "\(updated.text)")
        let stored = try #require(try setup.mongo.store().load(.credentials, id: "vault"))
        #expect(stored.json.contains(sealed) && stored.json.contains("X-Vault-Key"))
        // A plaintext value is refused with its field path.
        let plain = try setup.api(cluster, "POST", "/api/v1/credentials", token: admin, body: "{\"id\":\"leak\",\"header\":\"X-L\",\"value\":\"hunter2\"}")
        #expect(plain.status == 400)
        #expect(((plain.json?["issues"] as? [[String: Any]])?.first?["path"] as? String) == "value", "\(plain.text)")
        // Unknown fields too, and bad JSON.
        let typo = try setup.api(cluster, "POST", "/api/v1/policies", token: admin, body: "{\"id\":\"p\",\"rate_limit\":[]}")
        #expect(typo.status == 400, "\(typo.text)")
        #expect(try setup.api(cluster, "POST", "/api/v1/policies", token: admin, body: "{\"id\":").status == 400)

        // A token profile created without a hash gets a token, shown once.
        let profile = try setup.api(
            cluster, "POST", "/api/v1/clients/steady/profiles", token: admin, body: "{\"id\":\"steady-second\",\"auth\":{\"type\":\"token\"}}")
        #expect(profile.status == 201, "\(profile.text)")
        let issued = try #require(profile.json?["token"] as? String)
        #expect(setup.call(cluster, "/orders/1", client: "steady", profile: "steady-second", token: issued) == 200)
        let again = try setup.api(cluster, "GET", "/api/v1/clients/steady/profiles/steady-second", token: admin)
        #expect(again.json?["token"] == nil && !again.text.contains(issued))
        let rotated = try setup.api(cluster, "POST", "/api/v1/clients/steady/profiles/steady-second/rotate-token", token: admin)
        let second = try #require(rotated.json?["token"] as? String)
        #expect(second != issued)
        #expect(try setup.api(cluster, "DELETE", "/api/v1/clients/steady/profiles/steady-second", token: admin).status == 204)

        // The audit log: one entry per change, with every SPEC §6 field.
        let entries = try setup.api(cluster, "GET", "/api/v1/audit?resource_type=credential&resource_id=vault", token: auditor)
        #expect(entries.status == 200)
        let items = try #require(entries.json?["items"] as? [[String: Any]])
        #expect(items.count == 2, "create and update of vault: \(entries.text)")
        let first = try #require(items.last)  // newest first
        #expect(first["action"] as? String == "create")
        #expect((first["actor"] as? [String: Any])?["id"] as? String == "ci-bot")
        #expect((first["actor"] as? [String: Any])?["type"] as? String == "service")
        #expect(first["method"] as? String == "POST" && first["path"] as? String == "/api/v1/credentials")
        #expect(first["source_ip"] as? String == "127.0.0.1" && first["user_agent"] as? String == "portcullis-it")
        #expect(first["request_id"] as? String == created.header("X-Request-ID"))
        #expect(first["status"] as? Int == 201)
        #expect((first["body"] as? [String: Any])?["value"] as? String == "[redacted]")
        #expect(((items.first?["actor"] as? [String: Any])?["type"] as? String) == "user")
        let byAlice = try setup.api(cluster, "GET", "/api/v1/audit?actor=alice", token: auditor)
        let aliceActions = (byAlice.json?["items"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String }
        #expect(Set(aliceActions) == ["update", "create", "rotate", "delete"], "\(aliceActions)")
        let future = try setup.api(cluster, "GET", "/api/v1/audit?since=2999-01-01T00:00:00Z", token: auditor)
        #expect((future.json?["items"] as? [Any])?.isEmpty == true)
        let past = try setup.api(cluster, "GET", "/api/v1/audit?until=2000-01-01T00:00:00Z", token: auditor)
        #expect((past.json?["items"] as? [Any])?.isEmpty == true)
        #expect(try setup.api(cluster, "GET", "/api/v1/audit?since=yesterday", token: auditor).status == 400)

        // Secrets appear in no read, no audit entry, no log line.
        let everything = try setup.api(cluster, "GET", "/api/v1/audit?limit=1000", token: auditor).text
        for secret in [vaultSecret, sealed, issued, second, MongoSetup.backendSecret] {
            #expect(!everything.contains(secret), "a secret reached the audit log")
            #expect(!cluster.router.stderr.contains(secret) && !cluster.router.stdout.contains(secret), "a secret reached a log")
        }

        // Deleting entries: admin only, itself audited; no updates at all.
        let target = try #require(first["id"] as? String)
        #expect(try setup.api(cluster, "DELETE", "/api/v1/audit/\(target)", token: auditor).status == 403)
        #expect(try setup.api(cluster, "PUT", "/api/v1/audit/\(target)", token: admin, body: "{}", checkSpec: false).status == 405)
        #expect(try setup.api(cluster, "PATCH", "/api/v1/audit/\(target)", token: admin, body: "{}", checkSpec: false).status == 405)
        #expect(try setup.api(cluster, "DELETE", "/api/v1/audit/\(target)", token: admin).status == 204)
        #expect(try setup.api(cluster, "DELETE", "/api/v1/audit/\(target)", token: admin).status == 404)
        let afterDelete = try setup.api(cluster, "GET", "/api/v1/audit?resource_type=credential&resource_id=vault", token: auditor)
        #expect((afterDelete.json?["items"] as? [Any])?.count == 1)
        let deletions = try setup.api(cluster, "GET", "/api/v1/audit?resource_type=audit&resource_id=\(target)", token: admin)
        let record = (deletions.json?["items"] as? [[String: Any]])?.first { $0["status"] as? Int == 204 }
        #expect(record?["action"] as? String == "delete")
        #expect((record?["actor"] as? [String: Any])?["id"] as? String == "alice")
    }

    @Test func openAPIDescribesEveryOperationAndItsAnswers() throws {
        let setup = try MongoSetup()
        defer { setup.stop() }
        try setup.importModel()
        let cluster = try setup.startInstance(workers: 1)
        let admin = try setup.adminToken(roles: ["admin"])
        let sealed = try SecretValue.encrypt("s", key: EncryptionKey(parsing: MongoSetup.encryptionKeyHex))
        let calls: [(String, String, String?, Int)] = [
            ("POST", "/api/v1/policies", "{\"id\":\"gold\",\"rate_limits\":[{\"limit\":100,\"per\":\"second\",\"burst\":200}],\"quotas\":[{\"limit\":1000,\"per\":\"day\"}]}", 201),
            ("POST", "/api/v1/policies", "{\"id\":\"gold\"}", 409),
            ("GET", "/api/v1/policies?limit=1", nil, 200),
            ("GET", "/api/v1/policies?limit=1&after=gold", nil, 200),
            ("GET", "/api/v1/policies?limit=0", nil, 400),
            ("GET", "/api/v1/policies/gold", nil, 200),
            ("GET", "/api/v1/policies/ghost", nil, 404),
            ("PUT", "/api/v1/policies/gold", "{\"rate_limits\":[{\"limit\":50,\"per\":\"minute\"}]}", 200),
            ("PATCH", "/api/v1/policies/gold", "{\"on_redis_failure\":\"fail_closed\"}", 200),
            ("PATCH", "/api/v1/policies/gold", "{\"rate_limits\":[{\"limit\":-1,\"per\":\"minute\"}]}", 400),
            ("POST", "/api/v1/credentials", "{\"id\":\"c2\",\"header\":\"X-C2\",\"value\":\"\(sealed)\"}", 201),
            ("GET", "/api/v1/credentials", nil, 200),
            ("GET", "/api/v1/credentials/c2", nil, 200),
            ("PUT", "/api/v1/credentials/c2", "{\"header\":\"X-C3\",\"value\":\"[redacted]\"}", 200),
            ("PATCH", "/api/v1/credentials/c2", "{\"header\":\"X-C4\"}", 200),
            ("POST", "/api/v1/collections", "{\"id\":\"extra\",\"upstream\":{\"url\":\"http://127.0.0.1:9\",\"credential\":\"c2\"},\"routes\":[{\"path_prefix\":\"/extra\"}]}", 201),
            ("DELETE", "/api/v1/credentials/c2", nil, 409),
            ("GET", "/api/v1/collections", nil, 200),
            ("GET", "/api/v1/collections/extra", nil, 200),
            ("PUT", "/api/v1/collections/extra", "{\"upstream\":{\"url\":\"http://127.0.0.1:9\"},\"routes\":[{\"path_prefix\":\"/extra\"}]}", 200),
            ("PATCH", "/api/v1/collections/extra", "{\"keep_authorization\":true}", 200),
            ("POST", "/api/v1/clients", "{\"id\":\"oa\",\"policy\":\"gold\",\"collections\":[\"extra\"],\"profiles\":[{\"id\":\"oa-1\",\"auth\":{\"type\":\"token\"}}]}", 201),
            ("POST", "/api/v1/clients", "{\"id\":\"oa2\",\"profiles\":[{\"id\":\"oa-1\",\"auth\":{\"type\":\"none\"}}]}", 409),
            ("POST", "/api/v1/clients", "{\"id\":\"oa3\",\"collections\":[\"nope\"]}", 400),
            ("DELETE", "/api/v1/policies/gold", nil, 409),
            ("GET", "/api/v1/clients", nil, 200),
            ("GET", "/api/v1/clients/oa", nil, 200),
            ("PUT", "/api/v1/clients/oa", "{\"collections\":[\"extra\"],\"profiles\":[{\"id\":\"oa-1\",\"auth\":{\"type\":\"none\"}}]}", 200),
            ("PATCH", "/api/v1/clients/oa", "{\"status\":\"inactive\"}", 200),
            ("GET", "/api/v1/clients/oa/profiles", nil, 200),
            ("GET", "/api/v1/clients/ghost/profiles", nil, 404),
            ("POST", "/api/v1/clients/oa/profiles", "{\"id\":\"oa-2\",\"auth\":{\"type\":\"token\"},\"allowed_methods\":[\"GET\"]}", 201),
            ("GET", "/api/v1/clients/oa/profiles/oa-2", nil, 200),
            ("PUT", "/api/v1/clients/oa/profiles/oa-2", "{\"auth\":{\"type\":\"token\",\"token_sha256\":\"\(String(repeating: "ab", count: 32))\"}}", 200),
            ("PATCH", "/api/v1/clients/oa/profiles/oa-2", "{\"allowed_ips\":[\"10.0.0.0/8\"]}", 200),
            ("PATCH", "/api/v1/clients/oa/profiles/oa-2", "{\"allowed_ips\":[\"10.0.0.0/99\"]}", 400),
            ("POST", "/api/v1/clients/oa/profiles/oa-2/rotate-token", nil, 200),
            ("POST", "/api/v1/clients/oa/profiles/oa-1/rotate-token", nil, 409),
            ("DELETE", "/api/v1/clients/oa/profiles/oa-2", nil, 204),
            ("DELETE", "/api/v1/clients/oa", nil, 204),
            ("DELETE", "/api/v1/collections/extra", nil, 204),
            ("DELETE", "/api/v1/credentials/c2", nil, 204),
            ("DELETE", "/api/v1/policies/gold", nil, 204),
            ("GET", "/api/v1/audit?limit=5", nil, 200),
            ("DELETE", "/api/v1/audit/ghost", nil, 404),
        ]
        for (method, path, body, expected) in calls {
            let response = try setup.api(cluster, method, path, token: admin, body: body)
            #expect(response.status == expected, "\(method) \(path): \(response.status) \(response.text)")
        }
        // The audit entry to delete: the newest one.
        let newest = try setup.api(cluster, "GET", "/api/v1/audit?limit=1", token: admin)
        let id = try #require((newest.json?["items"] as? [[String: Any]])?.first?["id"] as? String)
        #expect(try setup.api(cluster, "DELETE", "/api/v1/audit/\(id)", token: admin).status == 204)
        // Paging: one item and a cursor, then the rest.
        let page = try setup.api(cluster, "GET", "/api/v1/clients?limit=1", token: admin)
        #expect((page.json?["items"] as? [Any])?.count == 1 && page.json?["next"] as? String == "acme")
        let rest = try setup.api(cluster, "GET", "/api/v1/clients?limit=1&after=acme", token: admin)
        #expect(((rest.json?["items"] as? [[String: Any]])?.first?["id"] as? String) == "steady" && rest.json?["next"] is NSNull)

        let documented = Set(setup.spec.operations.map { "\($0.method) \($0.template)" })
        let missing = documented.subtracting(setup.spec.checked)
        #expect(missing.isEmpty, "operations never exercised against the document: \(missing.sorted())")
        #expect(documented.count == 33)
    }

    @Test func theCLIDrivesTheAPI() throws {
        let setup = try MongoSetup()
        defer { setup.stop() }
        try setup.importModel()
        let cluster = try setup.startInstance(workers: 1)
        let env = ["PORTCULLIS_API_URL": "http://127.0.0.1:\(cluster.adminPort)", "PORTCULLIS_API_TOKEN": try setup.adminToken(roles: ["modifier"])]
        func run(_ arguments: [String]) throws -> CLIRun {
            let result = try CLIRun.portcullis(arguments, environment: env)
            #expect(result.status == 0, "portcullis \(arguments.joined(separator: " ")): \(result.stderr)")
            return result
        }
        let policy = try run(["policy", "create", "silver", "--rate", "20/second:40", "--quota", "5000/day"])
        #expect(policy.stdout.contains("silver") && policy.stdout.contains("20/second:40") && policy.stdout.contains("5000/day"), "\(policy.stdout)")
        _ = try run(["client", "create", "cli-co", "--policy", "silver", "--collection", "orders"])
        let profile = try run(["profile", "create", "cli-co", "cli-co-token", "--auth", "token", "--method", "get"])
        let token = try #require(profile.stdout.split(separator: "\n").first { $0.hasPrefix("token: ") }.map { String($0.dropFirst(7)) })
        #expect(setup.call(cluster, "/orders/1", client: "cli-co", profile: "cli-co-token", token: token) == 200)
        let table = try run(["client", "list"])
        #expect(table.stdout.hasPrefix("ID"), "a table with a header: \(table.stdout)")
        #expect(table.stdout.contains("cli-co") && table.stdout.contains("cli-co-token(token)"))
        let json = try run(["client", "get", "cli-co", "--output", "json"])
        let object = try JSONValue.parse(Array(json.stdout.utf8))
        #expect(object["policy"]?.string == "silver")
        let rotated = try run(["profile", "rotate-token", "cli-co", "cli-co-token", "-o", "json"])
        let fresh = try #require(try JSONValue.parse(Array(rotated.stdout.utf8))["token"]?.string)
        #expect(setup.call(cluster, "/orders/1", client: "cli-co", profile: "cli-co-token", token: token) == 401)
        #expect(setup.call(cluster, "/orders/1", client: "cli-co", profile: "cli-co-token", token: fresh) == 200)
        _ = try run(["client", "deactivate", "cli-co"])
        #expect(setup.call(cluster, "/orders/1", client: "cli-co", profile: "cli-co-token", token: fresh) == 403)
        let policies = try run(["policy", "list", "-o", "json"])
        #expect(policies.stdout.contains("\"silver\"") && policies.stdout.contains("\"standard\""))
        // Errors come back with the API's reason and a non-zero exit.
        let conflict = try CLIRun.portcullis(["client", "create", "cli-co"], environment: env)
        #expect(conflict.status != 0 && conflict.stderr.contains("409"), "\(conflict.stderr)")
        let invalid = try CLIRun.portcullis(["policy", "create", "bad", "--rate", "5/fortnight"], environment: env)
        #expect(invalid.status != 0 && invalid.stderr.contains("rate_limits[0].per"), "\(invalid.stderr)")
        let noToken = try CLIRun.portcullis(["client", "list", "--api", "http://127.0.0.1:\(cluster.adminPort)"])
        #expect(noToken.status != 0 && noToken.stderr.contains("PORTCULLIS_API_TOKEN"))
    }
}

/// The API without MongoDB: it rewrites the YAML file and keeps the audit
/// log as JSON lines beside it.
@Suite("Management API in file mode", .serialized)
struct ManagementAPIFileModeTests {
    @Test func writesTheFileAndAuditsBesideIt() throws {
        let key = OIDCIssuer.SigningKey(kid: "file-1", key: try AsymmetricKey.generate(.rsa), alg: .rs256)
        let issuer = try OIDCIssuer(keys: [key])
        defer { issuer.stop() }
        let cluster = try Cluster(workers: 1) { cluster in
            cluster.serverBlock(extra: "  admin: { issuer: \"\(issuer.issuer)\", audience: portcullis-admin }") + """

                collections:
                  - id: orders
                    upstream: { url: "\(cluster.upstreamURL)" }
                    routes: [ { path_prefix: /orders } ]
                clients: []
                """
        }
        defer { cluster.stop() }
        let token = try issuer.token(key, audience: "portcullis-admin", claims: ["sub": "ops", "roles": ["modifier"]])
        let body = "{\"id\":\"filed\",\"collections\":[\"orders\"],\"profiles\":[{\"id\":\"filed-open\",\"auth\":{\"type\":\"none\"}}]}"
        let response = try HTTPClient.request(
            port: cluster.adminPort,
            "POST /api/v1/clients HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer \(token)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        #expect(response.status == 201, "\(response.text)")
        let yaml = try String(contentsOfFile: cluster.configPath, encoding: .utf8)
        #expect(yaml.contains("filed-open"))
        // The rewritten file is still a valid config with the server section kept.
        let model = try ConfigLoader.parse(yaml: yaml)
        #expect(model.server.admin?.audience == "portcullis-admin" && model.clients.map(\.id) == ["filed"])
        let served = try cluster.send("GET", "/orders/1", headers: [("X-Client-ID", "filed"), ("X-Profile-ID", "filed-open")])
        #expect(served.status == 200)
        let auditPath = (cluster.configPath as NSString).deletingLastPathComponent + "/portcullis-audit.jsonl"
        let audit = try String(contentsOfFile: auditPath, encoding: .utf8)
        #expect(audit.contains("\"resource_id\":\"filed\"") && audit.contains("\"actor\":{\"id\":\"ops\""))
        // The file may hold secrets: written owner-only.
        let attrs = try FileManager.default.attributesOfItem(atPath: cluster.configPath)
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
    }

    @Test func aMissingCredentialVariableFailsOnlyItsRequests() throws {
        let cluster = try Cluster(workers: 1) { cluster in
            cluster.serverBlock() + """

                collections:
                  - id: paid
                    upstream: { url: "\(cluster.upstreamURL)", credential: vault }
                    routes: [ { path_prefix: /paid } ]
                  - id: free
                    upstream: { url: "\(cluster.upstreamURL)" }
                    routes: [ { path_prefix: /free } ]
                credentials:
                  - { id: vault, header: X-Vault, value: "$PORTCULLIS_IT_NEVER_SET_VARIABLE" }
                clients:
                  - id: open
                    collections: [paid, free]
                    profiles: [ { id: open-none, auth: { type: none } } ]
                """
        }
        defer { cluster.stop() }
        let identity = [("X-Client-ID", "open"), ("X-Profile-ID", "open-none")]
        let paid = try cluster.send("GET", "/paid/1", headers: identity)
        #expect(paid.status == 500, "\(paid.text)")
        #expect(paid.json?["error"] as? String == "credential_unavailable")
        #expect(try cluster.send("GET", "/free/1", headers: identity).status == 200)
        try waitUntil(5, "the log line") { cluster.router.stderr.contains("backend credential unavailable") }
        #expect(cluster.router.stderr.contains("PORTCULLIS_IT_NEVER_SET_VARIABLE"))
    }

    @Test func withoutAdminConfigTheAPIRefuses() throws {
        let cluster = try Cluster(workers: 1) { $0.serverBlock() }
        defer { cluster.stop() }
        let response = try HTTPClient.request(port: cluster.adminPort, "GET /api/v1/clients HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        #expect(response.status == 503, "\(response.text)")
        #expect(response.json?["error"] as? String == "admin_auth_unconfigured")
    }
}
