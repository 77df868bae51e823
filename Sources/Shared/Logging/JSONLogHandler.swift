import Logging

#if canImport(Glibc)
import Glibc
#endif

/// One JSON object per line on stderr, for log pipelines (Loki, Elastic,
/// Cloud Logging) that index fields rather than parse text:
///
///     {"time":"2026-11-23T05:06:37.123Z","level":"info","process":"router","pid":41,
///      "logger":"portcullis","message":"worker up","worker":"1","config_version":"1"}
///
/// Metadata keys become top-level fields (a key that collides with one of
/// ours is prefixed `meta_`); nested metadata becomes nested JSON. Each
/// line is written with one write(2), so the router's and the workers'
/// lines, which share the stream, never interleave mid-line.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider? = nil
    private let label: String
    private let process: String
    private let fd: CInt

    static let reserved: Set<String> = ["time", "level", "process", "pid", "logger", "message", "error", "source"]

    public init(label: String, process: String, fd: CInt = 2) {
        self.label = label
        self.process = process
        self.fd = fd
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = self.metadata
        if let provided = self.metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        let line = Self.line(
            unixMillis: Self.nowMillis(), level: event.level, process: self.process, pid: Int(getpid()), logger: self.label,
            message: event.message.description, error: event.error.map { "\($0)" }, metadata: merged)
        line.utf8CString.withUnsafeBufferPointer { buffer in
            // The C string's terminating NUL is not written.
            var offset = 0
            let count = buffer.count - 1
            while offset < count {
                let n = write(self.fd, buffer.baseAddress! + offset, count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return  // a closed stderr: nowhere left to say so
                }
                offset += n
            }
        }
    }

    /// The line for one event, newline included (separate for the tests).
    public static func line(
        unixMillis: Int64, level: Logger.Level, process: String, pid: Int, logger: String, message: String, error: String?,
        metadata: Logger.Metadata
    ) -> String {
        var out = "{\"time\":\""
        out.reserveCapacity(192 + message.utf8.count)
        out += ISOTime.format(unixMillis: unixMillis)
        out += "\",\"level\":\""
        out += level.rawValue
        out += "\",\"process\":"
        JSON.appendString(process, to: &out)
        out += ",\"pid\":\(pid),\"logger\":"
        JSON.appendString(logger, to: &out)
        out += ",\"message\":"
        JSON.appendString(message, to: &out)
        if let error {
            out += ",\"error\":"
            JSON.appendString(error, to: &out)
        }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            out += ","
            JSON.appendString(Self.reserved.contains(key) ? "meta_" + key : key, to: &out)
            out += ":"
            Self.append(value, to: &out)
        }
        out += "}\n"
        return out
    }

    private static func append(_ value: Logger.Metadata.Value, to out: inout String) {
        switch value {
        case .string(let text): JSON.appendString(text, to: &out)
        case .stringConvertible(let convertible): JSON.appendString(convertible.description, to: &out)
        case .array(let values):
            out += "["
            for (index, element) in values.enumerated() {
                if index > 0 { out += "," }
                Self.append(element, to: &out)
            }
            out += "]"
        case .dictionary(let entries):
            out += "{"
            for (index, (key, element)) in entries.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out += "," }
                JSON.appendString(key, to: &out)
                out += ":"
                Self.append(element, to: &out)
            }
            out += "}"
        }
    }

    static func nowMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}

/// How the router and the workers set up swift-log: JSON lines on stderr
/// (`PORTCULLIS_LOG_FORMAT=json`, the default) or swift-log's plain text
/// (`text`), at `PORTCULLIS_LOG_LEVEL` (default info). Workers inherit
/// both variables from the router.
public enum LogSetup {
    public static func bootstrap(process: String) {
        func variable(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
        let level = variable("PORTCULLIS_LOG_LEVEL").flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
        let text = variable("PORTCULLIS_LOG_FORMAT")?.lowercased() == "text"
        LoggingSystem.bootstrap { label in
            if text {
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = JSONLogHandler(label: label, process: process)
            handler.logLevel = level
            return handler
        }
    }
}

/// `2026-11-22T14:41:00.123Z`
public enum ISOTime {
    public static func format(unixMillis: Int64) -> String {
        var seconds = time_t(unixMillis / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = Int(unixMillis % 1000)
        let msText = ms < 10 ? "00\(ms)" : (ms < 100 ? "0\(ms)" : "\(ms)")
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(msText)Z"
    }
}
