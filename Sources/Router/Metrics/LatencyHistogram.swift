import Atomics
import NIOConcurrencyHelpers
import Prometheus

/// A latency histogram counted without a lock, for the three histograms
/// observed on every request. swift-prometheus' `Histogram` takes a lock and
/// compares `Duration`s against every bucket per observation (about 1,000
/// instructions, three times per request); here an event loop owns its own
/// instance and an observation is a short scan of integer bounds and two
/// relaxed atomic adds, which nothing else contends for. The family sums the
/// instances when `/metrics` is scraped and renders them in Prometheus' text
/// format, as the registry would.
final class LatencyHistogram: Sendable {
    /// Upper bounds in nanoseconds, ascending.
    let bounds: [Int64]
    /// Observations per bucket (not cumulative); the last one is +Inf.
    private let counts: [ManagedAtomic<Int>]
    private let sumNanos = ManagedAtomic<Int64>(0)

    init(bounds: [Int64]) {
        self.bounds = bounds
        self.counts = (0...bounds.count).map { _ in ManagedAtomic(0) }
    }

    func record(nanoseconds: Int64) {
        let value = max(0, nanoseconds)
        var index = 0
        while index < self.bounds.count && self.bounds[index] < value { index += 1 }
        self.counts[index].wrappingIncrement(ordering: .relaxed)
        self.sumNanos.wrappingIncrement(by: value, ordering: .relaxed)
    }

    /// Bucket counts (not cumulative, +Inf last) and the sum.
    var snapshot: (counts: [Int], sumNanos: Int64) {
        (self.counts.map { $0.load(ordering: .relaxed) }, self.sumNanos.load(ordering: .relaxed))
    }
}

/// One histogram metric: a name, help text and buckets, with a series per
/// label set, each counted by one `LatencyHistogram` per event loop.
final class LatencyHistogramFamily: Sendable {
    let name: String
    let help: String
    let buckets: [Duration]
    private let bounds: [Int64]
    /// Label set (rendered) -> the instances counting it.
    private let series = NIOLockedValueBox<[(labels: String, histograms: [LatencyHistogram])]>([])

    init(name: String, help: String, buckets: [Duration]) {
        self.name = name
        self.help = help
        self.buckets = buckets
        self.bounds = buckets.map { $0.components.seconds * 1_000_000_000 + $0.components.attoseconds / 1_000_000_000 }
    }

    /// A new instance for one event loop (and one label set); registration
    /// happens once per loop and label set, never per request.
    func make(labels: [(String, String)] = []) -> LatencyHistogram {
        let rendered = labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
        let histogram = LatencyHistogram(bounds: self.bounds)
        self.series.withLockedValue { series in
            if let index = series.firstIndex(where: { $0.labels == rendered }) {
                series[index].histograms.append(histogram)
            } else {
                series.append((rendered, [histogram]))
            }
        }
        return histogram
    }

    /// The family in the text exposition format.
    func emit(into out: inout String) {
        let series = self.series.withLockedValue { $0 }
        out += "# HELP \(self.name) \(self.help)\n# TYPE \(self.name) histogram\n"
        for (labels, histograms) in series {
            var counts = [Int](repeating: 0, count: self.bounds.count + 1)
            var sum: Int64 = 0
            for histogram in histograms {
                let snapshot = histogram.snapshot
                for index in counts.indices { counts[index] += snapshot.counts[index] }
                sum &+= snapshot.sumNanos
            }
            let prefix = labels.isEmpty ? "" : labels + ","
            var cumulative = 0
            for (index, bucket) in self.buckets.enumerated() {
                cumulative += counts[index]
                out += "\(self.name)_bucket{\(prefix)le=\"\(bucket.bucketRepresentation)\"} \(cumulative)\n"
            }
            cumulative += counts[self.bounds.count]
            out += "\(self.name)_bucket{\(prefix)le=\"+Inf\"} \(cumulative)\n"
            let braces = labels.isEmpty ? " " : "{\(labels)} "
            out += "\(self.name)_sum\(braces)\(Duration.nanoseconds(sum).bucketRepresentation)\n"
            out += "\(self.name)_count\(braces)\(cumulative)\n"
        }
    }

    private static func escape(_ value: String) -> String {
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
