import Foundation

/// One scrape of `/metrics`, parsed from the Prometheus text format.
struct MetricsScrape {
    struct Sample {
        let name: String
        let labels: [String: String]
        let value: Double
    }

    let samples: [Sample]
    let text: String

    init(text: String) throws {
        self.text = text
        var samples: [Sample] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            // name{a="x",b="y"} value   or   name value
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw HarnessError("unparsable metrics line: \(line)")
            }
            let series = line[..<space]
            var labels: [String: String] = [:]
            let name: Substring
            if let brace = series.firstIndex(of: "{") {
                name = series[..<brace]
                let inner = series[series.index(after: brace)..<(series.lastIndex(of: "}") ?? series.endIndex)]
                for pair in inner.split(separator: ",") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    guard kv.count == 2 else { throw HarnessError("unparsable labels: \(line)") }
                    labels[String(kv[0])] = String(kv[1].dropFirst().dropLast())
                }
            } else {
                name = series
            }
            samples.append(Sample(name: String(name), labels: labels, value: value))
        }
        self.samples = samples
    }

    static func of(_ cluster: Cluster) throws -> MetricsScrape {
        let response = try HTTPClient.request(port: cluster.adminPort, "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        guard response.status == 200 else { throw HarnessError("/metrics answered \(response.status)") }
        return try MetricsScrape(text: response.text)
    }

    /// The sum over every series of `name` whose labels include `labels`.
    func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        self.samples.filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }.reduce(0) { $0 + $1.value }
    }

    func series(_ name: String) -> [Sample] { self.samples.filter { $0.name == name } }

    /// Every metric family name the scrape declares (`# TYPE` lines).
    var families: Set<String> {
        Set(self.text.split(separator: "\n").compactMap { line in
            line.hasPrefix("# TYPE ") ? line.split(separator: " ").dropFirst(2).first.map(String.init) : nil
        })
    }
}
