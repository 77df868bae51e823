import Foundation
import Shared
import Testing
import Yams

@testable import Router

/// SPEC §4/§9 and issue 5's store: config import/export, live changes from
/// MongoDB to every worker of every instance, MongoDB going away. Real
/// nx-27017, real gateways, real sockets.
@Suite("Config in MongoDB (real nx-27017 and gateways)", .serialized)
struct MongoStoreTests {
    @Test func importExportRoundTripAndRejectedImports() throws {
        let setup = try MongoSetup()
        defer { setup.stop() }
        try setup.importModel()
        let env = setup.environment
        let exported = try CLIRun.portcullis(["config", "export"], environment: env)
        #expect(exported.status == 0, "\(exported.stderr)")
        let original = try ConfigLoader.parse(yaml: setup.modelYAML())
        let back = try ConfigLoader.parse(yaml: exported.stdout)
        #expect(ConfigDocumentSet(back) == ConfigDocumentSet(original))
        // The secret stays ciphertext in the export.
        #expect(!exported.stdout.contains(MongoSetup.backendSecret))
        #expect(exported.stdout.contains("enc:v1:"))

        // Re-importing the export changes nothing.
        let file = setup.directory.appendingPathComponent("exported.yaml").path
        try exported.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        let again = try CLIRun.portcullis(["config", "import", file], environment: env)
        #expect(again.status == 0)
        #expect(again.stdout.contains("0 created, 0 updated, 6 unchanged, 0 removed"), "\(again.stdout)")

        // A bad file: every problem named by field path, nothing written.
        var broken = try setup.modelYAML()
        broken = broken.replacingOccurrences(of: "policy: standard", with: "policy: nonexistent")
        broken += "\n      - id: acme-token\n        auth: { type: none }\n        allowed_ips: [\"10.0.0.300/8\"]\n"
        broken = broken.replacingOccurrences(
            of: "  - id: steady\n", with: "  - id: extra\n    collections: [orders]\n    profiles: []\n  - id: steady\n")
        let brokenFile = setup.directory.appendingPathComponent("broken.yaml").path
        try broken.write(toFile: brokenFile, atomically: true, encoding: .utf8)
        let rejected = try CLIRun.portcullis(["config", "import", brokenFile], environment: env)
        #expect(rejected.status != 0)
        #expect(rejected.stderr.contains("clients[0].policy"), "\(rejected.stderr)")
        #expect(rejected.stderr.contains("allowed_ips[0]"), "\(rejected.stderr)")
        #expect(rejected.stderr.contains("nothing was imported"))
        let after = try CLIRun.portcullis(["config", "export"], environment: env)
        #expect(after.stdout == exported.stdout, "a rejected import changed MongoDB")
        // Undecodable YAML too.
        try "clients: [ { id: x, status: sleeping } ]\n".write(toFile: brokenFile, atomically: true, encoding: .utf8)
        let undecodable = try CLIRun.portcullis(["config", "import", brokenFile], environment: env)
        #expect(undecodable.status != 0 && undecodable.stderr.contains("clients[0].status"), "\(undecodable.stderr)")
        #expect(try CLIRun.portcullis(["config", "export"], environment: env).stdout == exported.stdout)
        // An empty file is a mistake, not "remove everything".
        try "".write(toFile: brokenFile, atomically: true, encoding: .utf8)
        let empty = try CLIRun.portcullis(["config", "import", brokenFile], environment: env)
        #expect(empty.status != 0 && empty.stderr.contains("holds no YAML document"), "\(empty.stderr)")
        #expect(try CLIRun.portcullis(["config", "export"], environment: env).stdout == exported.stdout)

        // Removing a document through import removes it from MongoDB.
        let smaller = try setup.modelYAML().replacingOccurrences(of: "collections: [orders, reports]", with: "collections: [orders]")
            .replacingOccurrences(of: "  - id: reports\n    upstream: { url: \"http://127.0.0.1:\(setup.upstream.port)\" }\n    routes: [ { path_prefix: /reports } ]\n", with: "")
        try smaller.write(toFile: brokenFile, atomically: true, encoding: .utf8)
        let shrink = try CLIRun.portcullis(["config", "import", brokenFile], environment: env)
        #expect(shrink.stdout.contains("0 created, 1 updated, 4 unchanged, 1 removed"), "\(shrink.stdout) \(shrink.stderr)")

        // secret rotate-key re-encrypts the stored credential under the new key.
        let newKey = "0011223344556677889900112233445566778899001122334455667788990011"
        let rotate = try CLIRun.portcullis(
            ["secret", "rotate-key", "--from", "$OLD_KEY", "--to", "$NEW_KEY"],
            environment: env.merging(["OLD_KEY": MongoSetup.encryptionKeyHex, "NEW_KEY": newKey]) { $1 })
        #expect(rotate.status == 0, "\(rotate.stderr)")
        #expect(rotate.stdout.contains("1 secrets in 1 documents"), "\(rotate.stdout)")
        let rotated = try ConfigLoader.parse(yaml: try CLIRun.portcullis(["config", "export"], environment: env).stdout)
        let value = try #require(rotated.credentials.first?.value)
        let newKid = try EncryptionKey(parsing: newKey).kid
        #expect(value.hasPrefix("enc:v1:\(newKid):"))
        #expect(try SecretValue.resolve(value, key: EncryptionKey(parsing: newKey), environment: [:]) == MongoSetup.backendSecret)
        // Run again: nothing left to rotate.
        let rerun = try CLIRun.portcullis(
            ["secret", "rotate-key", "--from", "$OLD_KEY", "--to", "$NEW_KEY"],
            environment: env.merging(["OLD_KEY": MongoSetup.encryptionKeyHex, "NEW_KEY": newKey]) { $1 })
        #expect(rerun.stdout.contains("0 secrets in 0 documents") && rerun.stdout.contains("1 already were"), "\(rerun.stdout)")
    }

    @Test func liveChangesReachEveryInstanceWithinASecond() throws {
        let setup = try MongoSetup()
        defer { setup.stop() }
        try setup.importModel()
        let a = try setup.startInstance()
        let b = try setup.startInstance()
        let both = [a, b]
        let acme = MongoSetup.token("acme")
        for cluster in both {
            #expect(setup.call(cluster, "/orders/1", client: "acme", profile: "acme-token", token: acme) == 200, "\(cluster.logs)")
        }
        let traffic = SteadyTraffic(both, client: "steady", profile: "steady-token", token: MongoSetup.token("steady"))
        let admin = try setup.adminToken(roles: ["modifier"])
        var timings: [(String, Double)] = []

        // 1. Token rotation through the API on A: the old token is refused
        //    on both instances, the new one accepted.
        var start = Date()
        let rotated = try setup.api(a, "POST", "/api/v1/clients/acme/profiles/acme-token/rotate-token", token: admin)
        #expect(rotated.status == 200, "\(rotated.text)")
        let newToken = try #require(rotated.json?["token"] as? String)
        let rotation = setup.propagation(both, since: start) { cluster in
            setup.call(cluster, "/orders/1", client: "acme", profile: "acme-token", token: acme) == 401
                && setup.call(cluster, "/orders/1", client: "acme", profile: "acme-token", token: newToken) == 200
        }
        timings.append(("rotation", rotation ?? -1))

        // 2. Deactivation through the CLI (against B's API): 403 everywhere;
        //    only the worker owning the client gets a new snapshot.
        let appliedBefore = b.router.stderr.components(separatedBy: "config delta applied").count
        let wholeBefore = b.router.stderr.components(separatedBy: "config applied").count
        start = Date()
        let deactivate = try CLIRun.portcullis(
            ["profile", "deactivate", "acme", "acme-token", "--api", "http://127.0.0.1:\(b.adminPort)", "--output", "json"],
            environment: ["PORTCULLIS_API_TOKEN": admin])
        #expect(deactivate.status == 0, "\(deactivate.stderr)")
        #expect(deactivate.stdout.contains("\"status\":\"inactive\""))
        let deactivation = setup.propagation(both, since: start) { cluster in
            setup.call(cluster, "/orders/1", client: "acme", profile: "acme-token", token: newToken) == 403
        }
        timings.append(("deactivation", deactivation ?? -1))
        try waitUntil(5, "B's workers to hold the new version") {
            guard let ready = b.readiness() else { return false }
            return (ready["config_version"] as? Int) == (ready["loaded_version"] as? Int)
        }
        #expect(b.router.stderr.components(separatedBy: "config delta applied").count - appliedBefore == 1, "only the owning worker applies a client's change")
        #expect(b.router.stderr.components(separatedBy: "config applied").count == wholeBefore, "as a delta, not a whole snapshot")

        // 3. A new client written straight into MongoDB (no API, no
        //    version bump): served everywhere.
        let newcomer = MongoSetup.token("newcomer")
        start = Date()
        let store = try setup.mongo.store()
        try store.pool.withClient { client throws(MongoError) in
            let json = "{\"_id\":\"newcomer\",\"collections\":[\"orders\"],\"profiles\":[{\"id\":\"newcomer-token\",\"auth\":{\"type\":\"token\",\"token_sha256\":\"\(Crypto.sha256(newcomer).hex)\"}}]}"
            try client.collection(MongoConfigStore.database, "clients").insertOne(BSONDocument(json: json))
        }
        let creation = setup.propagation(both, since: start) { cluster in
            setup.call(cluster, "/orders/1", client: "newcomer", profile: "newcomer-token", token: newcomer) == 200
        }
        timings.append(("new client (direct write)", creation ?? -1))

        // 4. A collection taken away, then deleted, through the API.
        let reactivate = try setup.api(a, "PATCH", "/api/v1/clients/acme/profiles/acme-token", token: admin, body: "{\"status\":\"active\"}")
        #expect(reactivate.status == 200)
        try waitUntil(3, "acme active again everywhere") {
            both.allSatisfy { setup.call($0, "/reports/1", client: "acme", profile: "acme-token", token: newToken) == 200 }
        }
        let refused = try setup.api(a, "DELETE", "/api/v1/collections/reports", token: admin)
        #expect(refused.status == 409, "a referenced collection cannot be deleted: \(refused.text)")
        start = Date()
        let narrowed = try setup.api(a, "PATCH", "/api/v1/clients/acme", token: admin, body: "{\"collections\":[\"orders\"]}")
        #expect(narrowed.status == 200, "\(narrowed.text)")
        let revoked = setup.propagation(both, since: start) { cluster in
            setup.call(cluster, "/reports/1", client: "acme", profile: "acme-token", token: newToken) == 403
        }
        timings.append(("collection access removed", revoked ?? -1))
        start = Date()
        let deleted = try setup.api(b, "DELETE", "/api/v1/collections/reports", token: admin)
        #expect(deleted.status == 204, "\(deleted.text)")
        let gone = setup.propagation(both, since: start) { cluster in
            setup.call(cluster, "/reports/1", client: "acme", profile: "acme-token", token: newToken) == 404
        }
        timings.append(("collection deleted", gone ?? -1))

        // Enough steady requests to mean something, however slowly a busy
        // machine serves them: debug builds of two gateways, nx-27017 and
        // the rest of the suite share two cores (a parallel run once gave
        // exactly 50 in the change window). A stuck gateway still fails here.
        try waitUntil(10, "more than 50 steady requests") { traffic.count > 50 }
        let (sent, failures) = traffic.finish()
        print("propagation (s): " + timings.map { "\($0.0) \(String(format: "%.3f", $0.1))" }.joined(separator: ", ") + "; steady traffic \(sent) requests")
        for (what, seconds) in timings {
            #expect(seconds >= 0 && seconds <= 1.0, "\(what) took \(seconds) s (SPEC: ≤ 1 s; -1: never)")
        }
        #expect(sent > 50)
        #expect(failures.isEmpty, "traffic of an unchanged client stopped during changes: \(failures.prefix(5))")
    }

    @Test func mongoDownAtStartAndWhileRunning() throws {
        let setup = try MongoSetup()
        defer { setup.stop() }
        try setup.importModel()
        let snapshot = setup.directory.appendingPathComponent("shared-snapshot.json").path
        let a = try setup.startInstance(extraServer: "  snapshot_path: \"\(snapshot)\"")
        try waitUntil(5, "the snapshot on disk") { FileManager.default.fileExists(atPath: snapshot) }
        let traffic = SteadyTraffic([a], client: "steady", profile: "steady-token", token: MongoSetup.token("steady"))

        setup.mongo.kill()
        try waitUntil(10, "A to notice MongoDB is gone") {
            ((a.readiness()?["config_store"] as? [String: Any])?["connected"] as? Bool) == false
        }
        #expect(a.readiness()?["ready"] as? Bool == true, "MongoDB down does not make a serving instance unready")
        // A write meanwhile is refused with a clear 503, and nothing changes.
        let admin = try setup.adminToken(roles: ["admin"])
        let refused = try setup.api(a, "PATCH", "/api/v1/clients/acme", token: admin, body: "{\"status\":\"inactive\"}")
        #expect(refused.status == 503 && refused.json?["error"] as? String == "store_unavailable", "\(refused.text)")
        #expect(setup.call(a, "/orders/1", client: "acme", profile: "acme-token", token: MongoSetup.token("acme")) == 200)

        // B starts while MongoDB is down: it serves the snapshot and says so.
        let b = try setup.startInstance(extraServer: "  snapshot_path: \"\(snapshot)\"")
        let store = b.readiness()?["config_store"] as? [String: Any]
        #expect(store?["origin"] as? String == "snapshot", "\(String(describing: store))")
        #expect(b.router.stderr.contains("snapshot"), "the log says the snapshot is in use")
        #expect(setup.call(b, "/orders/1", client: "acme", profile: "acme-token", token: MongoSetup.token("acme")) == 200)

        // MongoDB back (same data): a change written to it reaches both.
        try setup.mongo.start()
        let start = Date()
        let mongoStore = try setup.mongo.store()
        try mongoStore.pool.withClient { client throws(MongoError) in
            let json = "{\"_id\":\"acme\",\"status\":\"inactive\",\"collections\":[\"orders\",\"reports\"],\"policy\":\"standard\",\"profiles\":[{\"id\":\"acme-token\",\"auth\":{\"type\":\"token\",\"token_sha256\":\"\(Crypto.sha256(MongoSetup.token("acme")).hex)\"}}]}"
            _ = try client.collection(MongoConfigStore.database, "clients").replaceOne(
                BSONDocument(json: "{\"_id\":\"acme\"}"), with: BSONDocument(json: json), upsert: false)
        }
        let resumed = setup.propagation([a, b], since: start, limit: 15) { cluster in
            setup.call(cluster, "/orders/1", client: "acme", profile: "acme-token", token: MongoSetup.token("acme")) == 403
        }
        #expect(resumed != nil, "changes resume when MongoDB is back")
        print("changes resumed \(String(format: "%.2f", resumed ?? -1)) s after MongoDB came back")
        try waitUntil(5, "B to report MongoDB as its source") {
            ((b.readiness()?["config_store"] as? [String: Any])?["origin"] as? String) == "mongodb"
        }
        let (sent, failures) = traffic.finish()
        #expect(sent > 20)
        #expect(failures.isEmpty, "serving stopped while MongoDB was away: \(failures.prefix(5))")
    }

    @Test func withoutChangeStreamsTheVersionCounterIsPolled() throws {
        let setup = try MongoSetup()
        defer { setup.stop() }
        try setup.importModel()
        let cluster = try setup.startInstance(workers: 2, environment: ["PORTCULLIS_MONGODB_CHANGE_STREAMS": "off"])
        #expect(((cluster.readiness()?["config_store"] as? [String: Any])?["mode"] as? String) == "polling")
        let admin = try setup.adminToken(roles: ["modifier"])
        // Through the API (which bumps meta.version) on another instance.
        let other = try setup.startInstance(workers: 1)
        var start = Date()
        #expect(try setup.api(other, "PATCH", "/api/v1/clients/acme", token: admin, body: "{\"status\":\"inactive\"}").status == 200)
        let viaAPI = setup.propagation([cluster], since: start) { c in
            setup.call(c, "/orders/1", client: "acme", profile: "acme-token", token: MongoSetup.token("acme")) == 403
        }
        #expect(viaAPI != nil && viaAPI! <= 1.0, "polling picked up the API's write in \(viaAPI ?? -1) s")
        // A direct write that bumps meta.version, as the README asks of scripts.
        start = Date()
        let store = try setup.mongo.store()
        try store.pool.withClient { client throws(MongoError) in
            let json = "{\"_id\":\"acme\",\"collections\":[\"orders\",\"reports\"],\"policy\":\"standard\",\"profiles\":[{\"id\":\"acme-token\",\"auth\":{\"type\":\"token\",\"token_sha256\":\"\(Crypto.sha256(MongoSetup.token("acme")).hex)\"}}]}"
            _ = try client.collection(MongoConfigStore.database, "clients").replaceOne(
                BSONDocument(json: "{\"_id\":\"acme\"}"), with: BSONDocument(json: json), upsert: false)
            _ = try client.collection(MongoConfigStore.database, "meta").updateOne(
                BSONDocument(json: "{\"_id\":\"config\"}"), update: BSONDocument(json: "{\"$inc\":{\"version\":1}}"), upsert: true)
        }
        let direct = setup.propagation([cluster], since: start) { c in
            setup.call(c, "/orders/1", client: "acme", profile: "acme-token", token: MongoSetup.token("acme")) == 200
        }
        #expect(direct != nil && direct! <= 1.0, "polling picked up a direct write in \(direct ?? -1) s")
    }

    @Test func aStartWithNeitherMongoNorSnapshotIsUnready() throws {
        let setup = try MongoSetup()
        defer { setup.stop() }
        setup.mongo.kill()
        // Cluster waits for readiness, so start the router by hand.
        let dir = setup.directory.appendingPathComponent("cold")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let port = Ports.free()
        let adminPort = Ports.free()
        let config = dir.appendingPathComponent("portcullis.yaml").path
        try "server:\n  listen: \"127.0.0.1:\(port)\"\n  admin_listen: \"127.0.0.1:\(adminPort)\"\n  decision_log: \"off\"\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let router = try ChildProcess(
            Binaries.path("portcullis"), ["serve", "--config", config, "--workers", "1"], directory: dir, name: "router",
            environment: setup.environment)
        defer { router.stop() }
        var readiness: HTTPResponse? = nil
        try waitUntil(15, "the admin port") {
            readiness = try? HTTPClient.request(port: adminPort, "GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            return readiness != nil
        }
        #expect(readiness?.status == 503)
        #expect(readiness?.json?["config_loaded"] as? Bool == false)
        // Then MongoDB comes up with a model: the instance becomes ready.
        try setup.mongo.start()
        try setup.importModel()
        try waitUntil(10, "readiness once MongoDB answers") {
            (try? HTTPClient.request(port: adminPort, "GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))?.status == 200
        }
    }
}
