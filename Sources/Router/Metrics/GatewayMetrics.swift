import CoreMetrics
import NIOConcurrencyHelpers
import Prometheus
import Shared

/// Every metric the router exports on `/metrics`, in one Prometheus
/// registry (swift-prometheus). Each family is made here once, with its
/// help text, and handed to the code that counts as a swift-metrics type
/// (`Counter`, `Timer`, `Meter`), so the request path depends on the
/// metrics API, not on the backend. The names are the contract of the
/// Grafana dashboard in `deploy/grafana/`; README "Metrics" lists them.
///
/// Two kinds of value:
/// - counted as things happen (requests, latencies, in-flight decisions,
///   OIDC key fetches), from the event loops through `LoopMetrics`;
/// - read at scrape time from state that already exists (workers, quota
///   sync reports, the config store) by `observe(_:)`.
final class GatewayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    /// Decisions take tens of microseconds; the buckets resolve that and
    /// still catch a stalled worker.
    static let decisionBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .seconds(1),
    ]
    /// Upstreams answer in milliseconds to the collection's timeout (30 s at most by default).
    static let upstreamBuckets: [Duration] = [
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10), .seconds(30),
    ]

    /// The per-request histograms, counted per event loop without a lock
    /// (`LatencyHistogram`) and rendered after the registry's families.
    let decisionDuration: LatencyHistogramFamily
    let requestDuration: LatencyHistogramFamily
    let upstreamDuration: LatencyHistogramFamily
    let configChanges: CoreMetrics.Counter
    private let inFlight: [CoreMetrics.Meter]
    private let scrape = NIOLockedValueBox(ScrapeState())

    /// Worker-reported totals restart at zero with the worker; the router
    /// adds the increases so its counters only ever go up.
    private struct ScrapeState {
        var syncBatches: [Int: UInt64] = [:]
        var syncFailures: [Int: UInt64] = [:]
        var restarts: [Int: Int] = [:]
    }

    init(workerCount: Int) {
        self.decisionDuration = LatencyHistogramFamily(
            name: "portcullis_decision_duration_seconds",
            help: "Time from a request's head to the worker's decision, including the hop to the worker.",
            buckets: Self.decisionBuckets)
        self.requestDuration = LatencyHistogramFamily(
            name: "portcullis_request_duration_seconds",
            help: "Time from a request's head to the end of its response, as the client sees it.", buckets: Self.upstreamBuckets)
        self.upstreamDuration = LatencyHistogramFamily(
            name: "portcullis_upstream_duration_seconds",
            help: "Time from an allowed request leaving for its upstream (connect included) to the upstream's response head.",
            buckets: Self.upstreamBuckets)
        let registry = self.registry
        self.configChanges = CoreMetrics.Counter(
            label: "portcullis_config_changes_total", dimensions: [],
            handler: Self.counter(registry, "portcullis_config_changes_total", [], "Config changes put in force since start."))
        self.inFlight = (0..<workerCount).map { slot in
            let labels = [("worker", String(slot))]
            return CoreMetrics.Meter(
                label: "portcullis_worker_in_flight", dimensions: labels,
                handler: Self.gauge(registry, "portcullis_worker_in_flight", labels, "Decision requests sent to the worker and not yet answered."))
        }
        // Families that exist before their first event, so dashboards and
        // alerts see a zero rather than no series.
        for slot in 0..<workerCount {
            _ = self.workerRestarts(slot)
            _ = self.quotaSyncBatches(slot)
            _ = self.quotaSyncFailures(slot)
        }
    }

    // MARK: counted as it happens

    func requests(status: Int, reason: String) -> CoreMetrics.Counter {
        let labels = [("status", String(status)), ("reason", reason)]
        return CoreMetrics.Counter(
            label: "portcullis_requests_total", dimensions: labels,
            handler: Self.counter(self.registry, "portcullis_requests_total", labels, "Requests answered, by HTTP status and the reason code of the decision log (allowed, invalid_token, rate_limited, ...)."))
    }

    func workerInFlight(_ slot: Int) -> CoreMetrics.Meter? {
        slot >= 0 && slot < self.inFlight.count ? self.inFlight[slot] : nil
    }

    func keyFetch(source: String, succeeded: Bool) {
        let labels = [("source", source), ("result", succeeded ? "success" : "failure")]
        Self.counter(self.registry, "portcullis_oidc_key_fetches_total", labels, "JWKS fetches (discovery included) per OIDC key source, by result."
        ).increment()
    }

    /// A new model is in force (version counted from 1 at start).
    func configApplied(version: UInt64, unixMs: Int64) {
        self.configChanges.increment()
        self.gauge("portcullis_config_loaded_version", [], "Version of the model the router loaded last (workers may lag; see portcullis_config_version).")
            .set(to: Double(version))
        self.gauge("portcullis_config_last_change_timestamp_seconds", [], "When the model in force last changed (Unix time).")
            .set(to: Double(unixMs) / 1000)
    }

    private func workerRestarts(_ slot: Int) -> Prometheus.Counter {
        Self.counter(self.registry, "portcullis_worker_restarts_total", [("worker", String(slot))], "Worker exits followed by a respawn.")
    }

    private func quotaSyncBatches(_ slot: Int) -> Prometheus.Counter {
        Self.counter(self.registry, "portcullis_quota_sync_batches_total", [("worker", String(slot))], "Successful Redis quota sync calls.")
    }

    private func quotaSyncFailures(_ slot: Int) -> Prometheus.Counter {
        Self.counter(self.registry, "portcullis_quota_sync_failures_total", [("worker", String(slot))], "Failed Redis quota sync calls.")
    }

    // MARK: read at scrape time

    /// Sets the state gauges from `status` and renders the registry.
    func exposition(_ status: AdminStatus, nowUnixMs: Int64) -> String {
        self.observe(status, nowUnixMs: nowUnixMs)
        var text = String(decoding: self.registry.emitToBuffer(), as: UTF8.self)
        for family in [self.decisionDuration, self.requestDuration, self.upstreamDuration] { family.emit(into: &text) }
        return text
    }

    func observe(_ status: AdminStatus, nowUnixMs: Int64) {
        self.gauge("portcullis_ready", [], "Whether the gateway is ready for traffic (1) or not (0).").set(to: status.isReady ? 1.0 : 0.0)
        self.gauge("portcullis_draining", [], "Whether the router is draining after SIGTERM.").set(to: status.draining ? 1.0 : 0.0)
        self.gauge("portcullis_config_version", [], "The oldest model version any worker holds: the version in force everywhere.")
            .set(to: Double(status.configVersion))
        self.scrape.withLockedValue { seen in
            for worker in status.workers {
                let labels = [("worker", String(worker.index))]
                self.gauge("portcullis_worker_up", labels, "Whether the worker is up.").set(to: worker.state == .up ? 1.0 : 0.0)
                self.gauge("portcullis_worker_config_version", labels, "Model version the worker acknowledged.")
                    .set(to: Double(worker.configVersion))
                let restarts = worker.restarts - (seen.restarts[worker.index] ?? 0)
                if restarts > 0 { self.workerRestarts(worker.index).increment(by: Int64(restarts)) }
                seen.restarts[worker.index] = worker.restarts
                guard status.redis != nil else { continue }
                let quota = worker.quota
                self.gauge("portcullis_quota_redis_up", labels, "Whether the worker's last quota sync with Redis succeeded.")
                    .set(to: quota?.quotaHealth == "up" ? 1.0 : 0.0)
                let unsynced = quota?.quotaUnsynced ?? 0
                self.gauge("portcullis_quota_unsynced_spends", labels, "Allowed requests counted locally and not yet written to Redis.")
                    .set(to: Double(unsynced))
                let lastSync = quota?.quotaLastSyncUnixMs ?? 0
                self.gauge("portcullis_quota_last_sync_timestamp_seconds", labels, "When the worker last synced with Redis (Unix time; 0: never).")
                    .set(to: Double(lastSync) / 1000)
                // With nothing unsynced there is no lag; otherwise the oldest
                // unsynced spend is at most this old.
                let lag = unsynced == 0 ? 0 : Double(max(0, nowUnixMs - lastSync)) / 1000
                self.gauge(
                    "portcullis_quota_sync_lag_seconds", labels,
                    "Upper bound on the age of the oldest quota spend not yet in Redis (0 when all are synced)."
                ).set(to: lastSync == 0 && unsynced > 0 ? Double(nowUnixMs) / 1000 : lag)
                Self.addIncrease(
                    quota.map { UInt64($0.quotaBatches) }, last: &seen.syncBatches[worker.index], to: self.quotaSyncBatches(worker.index))
                Self.addIncrease(
                    quota.map { UInt64($0.quotaFailures) }, last: &seen.syncFailures[worker.index], to: self.quotaSyncFailures(worker.index))
            }
        }
        for source in status.oidc {
            let labels = [("source", source.source)]
            self.gauge("portcullis_oidc_keys_last_success_timestamp_seconds", labels, "When the key source was last fetched successfully (Unix time; 0: never).")
                .set(to: Double(source.lastSuccessUnixMs) / 1000)
            self.gauge("portcullis_oidc_keys_fetch_failing", labels, "Whether the last fetch of the key source failed.")
                .set(to: source.lastError.isEmpty ? 0.0 : 1.0)
        }
        if let store = status.store {
            self.gauge("portcullis_config_store_up", [], "Whether MongoDB answered the last config read.").set(to: store.connected ? 1.0 : 0.0)
            self.gauge("portcullis_config_from_snapshot", [], "Whether the model in force came from the local snapshot rather than MongoDB.")
                .set(to: store.origin == "snapshot" ? 1.0 : 0.0)
            self.gauge("portcullis_config_skipped_documents", [], "Stored documents that failed validation and are not in force.")
                .set(to: Double(store.skipped))
        }
    }

    /// A worker's cumulative total went from `last` to `current`: add the
    /// increase, or all of `current` when the worker restarted (it fell).
    private static func addIncrease(_ current: UInt64?, last: inout UInt64?, to counter: Prometheus.Counter) {
        guard let current else { return }
        let previous = last ?? 0
        let increase = current >= previous ? current - previous : current
        if increase > 0 { counter.increment(by: Int64(clamping: increase)) }
        last = current
    }

    private func gauge(_ name: String, _ labels: [(String, String)], _ help: String) -> Prometheus.Gauge {
        Self.gauge(self.registry, name, labels, help)
    }

    /// `unitName` is left empty: our names already end in their unit.
    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    private static func gauge(
        _ registry: PrometheusCollectorRegistry, _ name: String, _ labels: [(String, String)], _ help: String
    ) -> Prometheus.Gauge {
        registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
    }

    private static func counter(
        _ registry: PrometheusCollectorRegistry, _ name: String, _ labels: [(String, String)], _ help: String
    ) -> Prometheus.Counter {
        registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
    }
}
