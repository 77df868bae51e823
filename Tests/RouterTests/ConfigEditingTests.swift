import Foundation
import Shared
import Testing

@testable import Router

/// The management API's pure parts: edits over the model, secrets never
/// read back, tokens shown once, the role matrix, MongoDB document
/// assembly, audit filters, key rotation of stored text.
@Suite("Config editing, assembly, audit and secret rotation (no I/O)")
struct ConfigEditingTests {
    static let model: GatewayConfig = {
        // Parsing our own literal cannot fail; an empty model would fail every test loudly.
        (try? ConfigLoader.parse(
            yaml: """
                collections:
                  - id: orders
                    upstream: { url: "http://127.0.0.1:9000", credential: backend }
                    routes: [ { path_prefix: /orders } ]
                credentials:
                  - { id: backend, header: X-Key, value: "$BACKEND_KEY" }
                policies:
                  - id: standard
                    rate_limits: [ { limit: 10, per: second } ]
                clients:
                  - id: acme
                    collections: [orders]
                    policy: standard
                    profiles:
                      - id: acme-jwt
                        auth: { type: jwt, secret: "$JWT_SECRET" }
                      - id: acme-token
                        auth: { type: token, token_sha256: "\(String(repeating: "0f", count: 32))" }
                """)) ?? GatewayConfig()
    }()
    static let environment = ["BACKEND_KEY": "k", "JWT_SECRET": "s"]

    func body(_ text: String) throws -> JSONValue { try JSONValue.parse(Array(text.utf8)) }

    @Test func readsNeverShowSecrets() throws {
        let credential = try ConfigEditor.get(.credentials, "backend", in: Self.model)
        #expect(credential.contains("\"value\":\"[redacted]\"") && !credential.contains("BACKEND_KEY"))
        let client = try ConfigEditor.get(.clients, "acme", in: Self.model)
        #expect(client.contains("\"secret\":\"[redacted]\"") && !client.contains("JWT_SECRET"))
        #expect(!ConfigEditor.list(.credentials, in: Self.model).contains("BACKEND_KEY"))
        #expect(throws: ConfigEditor.Failure.self) { try ConfigEditor.get(.clients, "ghost", in: Self.model) }
    }

    @Test func redactedMeansKeepTheStoredSecret() throws {
        let outcome = try ConfigEditor.write(
            .credentials, id: "backend", body: try self.body("{\"header\":\"X-Other\",\"value\":\"[redacted]\"}"), mode: .replace,
            model: Self.model, environment: Self.environment)
        guard case .credential(let stored)? = outcome.change.document else { Issue.record("not a credential"); return }
        #expect(stored.value == "$BACKEND_KEY" && stored.header == "X-Other")
        // A profile PATCH through the client keeps the jwt secret too.
        let patched = try ConfigEditor.writeProfile(
            client: "acme", id: "acme-jwt", body: try self.body("{\"allowed_methods\":[\"GET\"]}"), mode: .patch, model: Self.model,
            environment: Self.environment)
        guard case .client(let client)? = patched.change.document else { Issue.record("not a client"); return }
        #expect(client.profiles.first { $0.id == "acme-jwt" }?.auth.secret == "$JWT_SECRET")
    }

    @Test func tokensAreIssuedOnceAndStoredAsHashes() throws {
        let created = try ConfigEditor.writeProfile(
            client: "acme", id: nil, body: try self.body("{\"id\":\"acme-new\",\"auth\":{\"type\":\"token\"}}"), mode: .create,
            model: Self.model, environment: Self.environment)
        let answer = try JSONValue.parse(Array((created.body ?? "").utf8))
        let token = try #require(answer["token"]?.string)
        guard case .client(let client)? = created.change.document else { Issue.record("not a client"); return }
        let stored = try #require(client.profiles.first { $0.id == "acme-new" })
        #expect(stored.auth.tokenSHA256 == Crypto.sha256(token).hex)
        let rotated = try ConfigEditor.rotateToken(client: "acme", "acme-token", model: Self.model, environment: Self.environment)
        let fresh = try #require(try JSONValue.parse(Array((rotated.body ?? "").utf8))["token"]?.string)
        guard case .client(let after)? = rotated.change.document else { Issue.record("not a client"); return }
        #expect(after.profiles.first { $0.id == "acme-token" }?.auth.tokenSHA256 == Crypto.sha256(fresh).hex)
        #expect(throws: ConfigEditor.Failure.self) {
            try ConfigEditor.rotateToken(client: "acme", "acme-jwt", model: Self.model, environment: Self.environment)
        }
    }

    @Test func validationNamesFieldsRelativeToTheResource() throws {
        do {
            _ = try ConfigEditor.write(
                .clients, id: "acme", body: try self.body("{\"collections\":[\"nope\"],\"profiles\":[]}"), mode: .patch, model: Self.model,
                environment: Self.environment)
            Issue.record("accepted a reference to a missing collection")
        } catch ConfigEditor.Failure.badRequest(_, let issues) {
            #expect(issues.map(\.path) == ["collections[0]"])
        } catch {
            Issue.record("\(error)")
        }
        // Deleting what is referenced is a conflict; the id in the path wins.
        #expect(throws: ConfigEditor.Failure.self) { try ConfigEditor.delete(.policies, "standard", model: Self.model, environment: Self.environment) }
        do {
            _ = try ConfigEditor.write(.policies, id: "standard", body: try self.body("{\"id\":\"other\"}"), mode: .replace, model: Self.model, environment: Self.environment)
            Issue.record("let the id change")
        } catch ConfigEditor.Failure.badRequest(_, let issues) {
            #expect(issues.map(\.path) == ["id"])
        } catch {
            Issue.record("\(error)")
        }
        // A profile id must be unique across clients.
        do {
            _ = try ConfigEditor.write(
                .clients, id: nil, body: try self.body("{\"id\":\"b\",\"profiles\":[{\"id\":\"acme-token\",\"auth\":{\"type\":\"none\"}}]}"),
                mode: .create, model: Self.model, environment: Self.environment)
            Issue.record("took a profile id another client holds")
        } catch ConfigEditor.Failure.conflict {
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func mergePatchFollowsRFC7396() throws {
        let original = try self.body("{\"a\":\"b\",\"c\":{\"d\":\"e\",\"f\":\"g\"}}")
        let patched = original.mergePatched(with: try self.body("{\"a\":\"z\",\"c\":{\"f\":null}}"))
        #expect(patched == (try self.body("{\"a\":\"z\",\"c\":{\"d\":\"e\"}}")))
        #expect(original.mergePatched(with: try self.body("[1]")) == (try self.body("[1]")))
    }

    @Test func pagesInIdOrderWithACursor() throws {
        var model = Self.model
        for id in ["c", "a", "b"] { model.policies.append(PolicyConfig(id: id)) }
        let first = try JSONValue.parse(Array(ConfigEditor.list(.policies, in: model, limit: 2).utf8))
        #expect(first["items"]?.array?.compactMap { $0["id"]?.string } == ["a", "b"])
        #expect(first["next"]?.string == "b")
        let second = try JSONValue.parse(Array(ConfigEditor.list(.policies, in: model, limit: 2, after: "b").utf8))
        #expect(second["items"]?.array?.compactMap { $0["id"]?.string } == ["c", "standard"])
        #expect(second["next"] == .null)
    }

    @Test func roleMatrix() {
        typealias R = AdminAuthenticator.Role
        #expect(ManagementAPI.allowedRoles(method: "GET", auditPath: false) == [R.viewer, .modifier, .admin])
        #expect(ManagementAPI.allowedRoles(method: "PATCH", auditPath: false) == [R.modifier, .admin])
        #expect(ManagementAPI.allowedRoles(method: "GET", auditPath: true) == [R.auditor, .admin])
        #expect(ManagementAPI.allowedRoles(method: "DELETE", auditPath: true) == [R.admin])
    }

    @Test func assemblyHoldsBackABadDocumentAndKeepsItsPreviousVersion() throws {
        let accepted = ConfigDocumentSet(Self.model)
        var latest = accepted
        // A client now naming a policy that does not exist: held at its previous version.
        var acme = try #require(Self.model.clients.first)
        acme.policy = "ghost"
        latest.put(.client(acme))
        // A new client that is broken from the start: left out.
        latest.put(.client(ClientConfig(id: "broken", collections: ["nope"])))
        let outcome = try ConfigAssembler.assemble(
            latest: latest, undecodable: [], accepted: accepted, server: ServerConfig(), environment: Self.environment
        ).get()
        #expect(outcome.config.model.clients.first { $0.id == "acme" }?.policy == "standard")
        #expect(!outcome.config.model.clients.contains { $0.id == "broken" })
        #expect(Set(outcome.skipped.map(\.id)) == ["acme", "broken"])
        // An undecodable stored form keeps the previous version too.
        let second = try ConfigAssembler.assemble(
            latest: accepted, undecodable: [(.policies, "standard", "rate_limits: not an array")], accepted: accepted, server: ServerConfig(),
            environment: Self.environment
        ).get()
        #expect(second.config.model.policies.map(\.id) == ["standard"])
    }

    @Test func auditTimesAndFilters() {
        #expect(ManagementAPI.isTimestamp("2026-01-31T00:00:00Z"))
        #expect(ManagementAPI.isTimestamp("2026-01-31T00:00:00.5Z"))
        #expect(!ManagementAPI.isTimestamp("2026-01-31T00:00:00.Z"))
        #expect(!ManagementAPI.isTimestamp("2026-01-31 00:00:00Z"))
        #expect(!ManagementAPI.isTimestamp("2026-01-31T00:00:00+01:00"))
        #expect(ManagementAPI.withMilliseconds("2026-01-31T00:00:00Z") == "2026-01-31T00:00:00.000Z")
        #expect(ManagementAPI.withMilliseconds("2026-01-31T00:00:00.5Z") == "2026-01-31T00:00:00.500Z")
        let entry = JSONValue.object([
            "time": .string("2026-01-31T00:00:00.000Z"), "actor": .object(["id": .string("alice")]), "resource_type": .string("client"),
            "resource_id": .string("acme"),
        ])
        var query = AuditQuery()
        query.since = "2026-01-31T00:00:00.000Z"
        #expect(query.matches(entry))
        query.until = "2026-01-31T00:00:00.000Z"
        #expect(!query.matches(entry), "until is exclusive")
        #expect(AuditQuery(actor: "bob").matches(entry) == false)
        #expect(AuditQuery(resourceType: "client", resourceID: "acme").matches(entry))
        // Secrets in a submitted body never reach the entry.
        let audited = AuditEntry(
            id: "1", time: "t", actorID: "a", actorType: "user", action: "create", resourceType: "credential", resourceID: "c", method: "POST",
            path: "/", sourceIP: "127.0.0.1", userAgent: "u", requestID: "r",
            body: .object(["value": .string("enc:v1:x"), "nested": .object(["secret": .string("s"), "password": .string("p")])]), status: 201)
        #expect(!audited.json().contains("enc:v1:x") && !audited.json().contains("\"s\"") && !audited.json().contains("\"p\""))
    }

    @Test func keyRotationRewritesOnlyCiphertext() throws {
        let old = try EncryptionKey(parsing: String(repeating: "11", count: 32))
        let new = try EncryptionKey(parsing: String(repeating: "22", count: 32))
        let a = try SecretValue.encrypt("alpha", key: old)
        let b = try SecretValue.encrypt("beta", key: new)
        let text = "# keep this comment\nsecret: \"\(a)\"\nother: \(b)\nplain: $VAR\n"
        let outcome = try SecretRotation.rotate(text, from: old, to: new)
        #expect(outcome.rotated == 1 && outcome.alreadyRotated == 1)
        #expect(outcome.text.hasPrefix("# keep this comment\nsecret: \"enc:v1:\(new.kid):"))
        #expect(outcome.text.contains("other: \(b)\nplain: $VAR\n"))
        let rotatedValue = try #require(outcome.text.split(separator: "\"").dropFirst().first.map(String.init))
        #expect(try SecretValue.resolve(rotatedValue, key: new, environment: [:]) == "alpha")
        // A value under a third key is an error, not a silent skip.
        let stranger = try EncryptionKey(parsing: String(repeating: "33", count: 32))
        let foreign = try SecretValue.encrypt("gamma", key: stranger)
        #expect(throws: SecretError.self) { try SecretRotation.rotate(foreign, from: old, to: new) }
        // During a rotation both keys decrypt (ENCRYPTION_KEY_PREVIOUS).
        let ring = try #require(try EncryptionKey.fromEnvironment(["ENCRYPTION_KEY": String(repeating: "22", count: 32), "ENCRYPTION_KEY_PREVIOUS": String(repeating: "11", count: 32)]))
        #expect(try SecretValue.resolve(a, key: ring, environment: [:]) == "alpha")
        #expect(try SecretValue.resolve(b, key: ring, environment: [:]) == "beta")
    }
}

@Suite("MongoDB source: patching the sorted client list")
struct ClientPatchTests {
    @Test func insertsReplacesAndRemovesInIdOrder() {
        let clients = ["a", "c", "e"].map { ClientConfig(id: $0) }
        let patched = MongoConfigSource.patch(
            clients, with: ["b": ClientConfig(id: "b"), "c": ClientConfig(id: "c", status: .inactive), "e": nil, "z": ClientConfig(id: "z"), "q": nil])
        #expect(patched.map(\.id) == ["a", "b", "c", "z"])
        #expect(patched[2].status == .inactive)
    }
}
