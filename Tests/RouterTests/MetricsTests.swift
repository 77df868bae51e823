import Foundation
import Shared
import Testing

@testable import Router

@Suite("Gateway metrics")
struct MetricsTests {
    static func status(restarts: Int, batches: UInt64, failures: UInt64, unsynced: Int, lastSync: Int64) -> AdminStatus {
        let quota = WorkerStatusMessage(
            quotaHealth: failures > 0 ? "down" : "up", quotaUnsynced: unsynced, quotaBatches: batches, quotaFailures: failures,
            quotaLastSyncUnixMs: lastSync)
        let worker = WorkerSupervisor.SlotStatus(index: 0, pid: 1, state: .up, restarts: restarts, configVersion: 3, quota: quota)
        return AdminStatus(configLoaded: true, loadedVersion: 3, draining: false, workers: [worker], redis: "redis://127.0.0.1:6379/0")
    }

    static func value(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.split(separator: " ").last ?? "")
        }
        return nil
    }

    /// Workers report running totals that restart at zero with them; the
    /// exported counters must never fall.
    @Test func workerTotalsStayMonotonicAcrossRestarts() {
        let metrics = GatewayMetrics(workerCount: 1)
        _ = metrics.exposition(Self.status(restarts: 0, batches: 10, failures: 2, unsynced: 0, lastSync: 1_000_000), nowUnixMs: 1_000_500)
        // The worker restarted: its own totals start over.
        let text = metrics.exposition(Self.status(restarts: 1, batches: 3, failures: 0, unsynced: 0, lastSync: 1_001_000), nowUnixMs: 1_001_100)
        #expect(Self.value(text, "portcullis_quota_sync_batches_total{worker=\"0\"}") == 13)
        #expect(Self.value(text, "portcullis_quota_sync_failures_total{worker=\"0\"}") == 2)
        #expect(Self.value(text, "portcullis_worker_restarts_total{worker=\"0\"}") == 1)
        // Same report again: nothing added.
        let again = metrics.exposition(Self.status(restarts: 1, batches: 3, failures: 0, unsynced: 0, lastSync: 1_001_000), nowUnixMs: 1_001_200)
        #expect(Self.value(again, "portcullis_quota_sync_batches_total{worker=\"0\"}") == 13)
    }

    @Test func syncLagIsTheAgeOfWhatIsUnsynced() {
        let metrics = GatewayMetrics(workerCount: 1)
        let synced = metrics.exposition(Self.status(restarts: 0, batches: 1, failures: 0, unsynced: 0, lastSync: 1_000_000), nowUnixMs: 1_009_000)
        #expect(Self.value(synced, "portcullis_quota_sync_lag_seconds{worker=\"0\"}") == 0)
        let behind = metrics.exposition(Self.status(restarts: 0, batches: 1, failures: 1, unsynced: 40, lastSync: 1_000_000), nowUnixMs: 1_009_000)
        #expect(Self.value(behind, "portcullis_quota_sync_lag_seconds{worker=\"0\"}") == 9)
        #expect(Self.value(behind, "portcullis_quota_unsynced_spends{worker=\"0\"}") == 40)
        #expect(Self.value(behind, "portcullis_quota_redis_up{worker=\"0\"}") == 0)
    }

    @Test func requestCountersAndHistogramsRender() {
        let metrics = GatewayMetrics(workerCount: 2)
        let loop = LoopMetrics(metrics)
        loop.answered(status: 200, reason: "allowed", nanoseconds: 2_000_000)
        loop.answered(status: 200, reason: "allowed", nanoseconds: 3_000_000)
        loop.answered(status: 401, reason: "token_invalid", nanoseconds: 100_000)
        loop.decided(nanoseconds: 80_000)
        loop.upstreamAnswered(collection: "orders", nanoseconds: 1_500_000)
        metrics.workerInFlight(1)?.increment()
        #expect(metrics.workerInFlight(2) == nil)
        let text = metrics.exposition(AdminStatus(configLoaded: true, loadedVersion: 1, draining: false, workers: []), nowUnixMs: 0)
        #expect(Self.value(text, "portcullis_requests_total{status=\"200\",reason=\"allowed\"}") == 2)
        #expect(Self.value(text, "portcullis_requests_total{status=\"401\",reason=\"token_invalid\"}") == 1)
        #expect(Self.value(text, "portcullis_request_duration_seconds_count") == 3)
        #expect(Self.value(text, "portcullis_decision_duration_seconds_bucket{le=\"0.0001\"}") == 1)
        #expect(Self.value(text, "portcullis_decision_duration_seconds_bucket{le=\"0.00005\"}") == 0)
        #expect(Self.value(text, "portcullis_upstream_duration_seconds_bucket{collection=\"orders\",le=\"0.0025\"}") == 1)
        #expect(Self.value(text, "portcullis_worker_in_flight{worker=\"1\"}") == 1)
        #expect(text.contains("# HELP portcullis_requests_total "))
    }
}
