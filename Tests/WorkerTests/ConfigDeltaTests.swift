import Foundation
import Shared
import Testing

@testable import Worker

/// A change to a few clients reaches workers as a delta: each worker gets
/// only its part, and applying it gives the same decisions as the whole
/// new share would.
@Suite("Config deltas")
struct ConfigDeltaTests {
    let clock = ManualClock()

    func owner(_ id: String) -> Int { id == "globex" || id == "newco" ? 1 : 0 }

    func index(_ model: GatewayConfig) -> [String: ClientConfig] {
        Dictionary(uniqueKeysWithValues: model.clients.map { ($0.id, $0) })
    }

    @Test func deltasMatchWholeSnapshots() throws {
        let old = try ConfigLoader.parse(yaml: Fixture.yaml)
        var new = old
        // acme (worker 0) loses acme-open and its token profile goes inactive;
        // newco (worker 1) arrives with acme-open; dormant (worker 0) is removed.
        let acme = try #require(new.clients.firstIndex { $0.id == "acme" })
        new.clients[acme].profiles.removeAll { $0.id == "acme-open" }
        if let token = new.clients[acme].profiles.firstIndex(where: { $0.id == "acme-token" }) { new.clients[acme].profiles[token].status = .inactive }
        new.clients.append(ClientConfig(id: "newco", collections: ["orders"], profiles: [ProfileConfig(id: "acme-open", auth: AuthConfig(type: .none))]))
        new.clients.removeAll { $0.id == "dormant" }

        let deltas = try #require(WorkerDelta.diff(from: old, oldClients: self.index(old), to: new, workerCount: 2, owner: self.owner))
        #expect(deltas[0].upserts.map(\.id) == ["acme"])
        #expect(deltas[0].removed == ["dormant"])
        #expect(deltas[0].foreignSet == ["acme-open": "newco"])
        #expect(deltas[1].upserts.map(\.id) == ["newco"])
        #expect(Set(deltas[1].foreignRemoved) == ["acme-open", "dormant-open"])
        // Unchanged clients are never sent.
        #expect(!deltas.contains { $0.upserts.contains { $0.id == "globex" } })

        for worker in 0..<2 {
            let viaDelta = WorkerEngine(workerIndex: worker, clock: self.clock)
            try viaDelta.apply(WorkerSnapshot.partition(old, version: 1, workerCount: 2, owner: self.owner)[worker])
            viaDelta.acknowledge(version: 1)
            // Through the wire format, as the router sends it.
            let decoded = try WorkerDelta.decode(try deltas[worker].encoded())
            try viaDelta.apply(decoded, base: 1, version: 2)
            let whole = WorkerEngine(workerIndex: worker, clock: self.clock)
            try whole.apply(WorkerSnapshot.partition(new, version: 2, workerCount: 2, owner: self.owner)[worker])
            let requests = [
                Fixture.request(), Fixture.request(profile: "acme-open"), Fixture.request(client: "newco", profile: "acme-open"),
                Fixture.request(client: "dormant", profile: "dormant-open"), Fixture.request(client: "globex", profile: "globex-token"),
                Fixture.request(profile: "globex-token"),
            ]
            for request in requests {
                let a = viaDelta.decide(request)
                let b = whole.decide(request)
                #expect(a.status == b.status && a.reason == b.reason, "worker \(worker) \(request.clientID)/\(request.profileID): \(a.reason) vs \(b.reason)")
            }
            #expect(viaDelta.version == 2)
        }
    }

    @Test func aDeltaForAnotherBaseIsRefused() throws {
        let model = try ConfigLoader.parse(yaml: Fixture.yaml)
        let engine = WorkerEngine(workerIndex: 0, clock: self.clock)
        try engine.apply(WorkerSnapshot.partition(model, version: 1, workerCount: 1, owner: { _ in 0 })[0])
        engine.acknowledge(version: 3)
        #expect(throws: ConfigError.self) { try engine.apply(WorkerDelta(removed: ["acme"]), base: 2, version: 4) }
        // The model in force is untouched.
        #expect(engine.decide(Fixture.request()).outcome == .allow)
    }

    /// Policy and route edits travel as deltas too: the worker recompiles
    /// the changed policy and re-points its clients, and decides exactly
    /// as a worker given the whole new share (limit state included).
    @Test func policyAndRouteChangesAreDeltasThatMatchWholeSnapshots() throws {
        let old = try ConfigLoader.parse(yaml: Fixture.yaml)
        var new = old
        new.policies[1].quotas[0].limit = 10  // quota: globex's
        new.collections[0].routes.append(RouteConfig(pathPrefix: "/v3/orders"))
        new.collections[1].routes = [RouteConfig(pathPrefix: "/invoices")]
        let deltas = WorkerDelta.diff(from: old, oldClients: self.index(old), to: new, workerCount: 1, owner: { _ in 0 })
        #expect(deltas[0].upserts.isEmpty && deltas[0].removed.isEmpty)
        #expect(deltas[0].policies == new.policies)
        #expect(deltas[0].collections?.map(\.id) == ["orders", "billing"])

        let viaDelta = WorkerEngine(workerIndex: 0, clock: self.clock)
        let whole = WorkerEngine(workerIndex: 0, clock: self.clock)
        let requests = [
            Fixture.request(), Fixture.request(path: "/v3/orders/1"), Fixture.request(client: "globex", profile: "globex-token"),
            Fixture.request(client: "globex", profile: "globex-token", path: "/billing/1"),
            Fixture.request(client: "globex", profile: "globex-token", path: "/invoices/1"),
        ]
        for engine in [viaDelta, whole] {
            try engine.apply(WorkerSnapshot.partition(old, version: 1, workerCount: 1, owner: { _ in 0 })[0])
            engine.acknowledge(version: 1)
            // acme spends its 2/s; globex spends its quota of 3.
            for _ in 0..<3 { _ = engine.decide(Fixture.request()) }
            for _ in 0..<4 { _ = engine.decide(Fixture.request(client: "globex", profile: "globex-token")) }
        }
        let acmeToken = try #require(viaDelta.model?.profiles["acme-token"])
        try viaDelta.apply(WorkerDelta.decode(try deltas[0].encoded()), base: 1, version: 2)
        try whole.apply(WorkerSnapshot.partition(new, version: 2, workerCount: 1, owner: { _ in 0 })[0])
        // Nothing of the profiles was recompiled.
        #expect(viaDelta.model?.profiles["acme-token"] === acmeToken)
        #expect(viaDelta.model?.clients["globex"]?.policy?.config.quotas.first?.limit == 10)
        var statuses: [Int] = []
        for request in requests {
            let a = viaDelta.decide(request)
            let b = whole.decide(request)
            #expect(a.status == b.status && a.reason == b.reason, "\(request.clientID) \(request.path): \(a.reason) vs \(b.reason)")
            statuses.append(a.status)
        }
        // acme's bucket survived (its policy did not change) and is still
        // empty; globex is under its new quota of 10; /billing is gone.
        #expect(statuses == [429, 429, 200, 404, 200])
    }

    @Test func aDeltaThatDoesNotCompileChangesNothing() throws {
        let model = try ConfigLoader.parse(yaml: Fixture.yaml)
        let engine = WorkerEngine(workerIndex: 0, clock: self.clock)
        try engine.apply(WorkerSnapshot.partition(model, version: 1, workerCount: 1, owner: { _ in 0 })[0])
        engine.acknowledge(version: 1)
        var acme = try #require(model.clients.first { $0.id == "acme" })
        acme.profiles[0].auth.tokenSHA256 = "not-hex"
        #expect(throws: ConfigError.self) { try engine.apply(WorkerDelta(upserts: [acme]), base: 1, version: 2) }
        #expect(engine.decide(Fixture.request()).outcome == .allow)
        #expect(engine.version == 1)
    }
}
