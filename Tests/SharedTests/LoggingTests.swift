import Foundation
import Logging
import Testing

@testable import Shared

@Suite("JSON log lines")
struct LoggingTests {
    @Test func aLineIsOneJSONObjectWithMetadataAsFields() throws {
        let line = JSONLogHandler.line(
            unixMillis: 1_795_410_397_224, level: .warning, process: "router", pid: 41, logger: "portcullis",
            message: "request \"failed\"\n\tbadly \u{1}", error: nil,
            metadata: [
                "request_id": "r-1", "pid": "7", "message": "collides",
                "nested": .dictionary(["b": "2", "a": .array(["x", .stringConvertible(3)])]),
            ])
        #expect(line.hasSuffix("}\n") && line.filter { $0 == "\n" }.count == 1, "exactly one line")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["time"] as? String == "2026-11-23T05:06:37.224Z")
        #expect(object["level"] as? String == "warning" && object["process"] as? String == "router" && object["pid"] as? Int == 41)
        #expect(object["message"] as? String == "request \"failed\"\n\tbadly \u{1}")
        #expect(object["request_id"] as? String == "r-1")
        // Metadata never overwrites the line's own fields.
        #expect(object["meta_pid"] as? String == "7" && object["meta_message"] as? String == "collides")
        let nested = try #require(object["nested"] as? [String: Any])
        #expect(nested["b"] as? String == "2" && (nested["a"] as? [String]) == ["x", "3"])
    }

    @Test func anErrorIsItsOwnField() throws {
        let line = JSONLogHandler.line(
            unixMillis: 0, level: .error, process: "worker", pid: 1, logger: "l", message: "m", error: "boom", metadata: [:])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["error"] as? String == "boom" && object["time"] as? String == "1970-01-01T00:00:00.000Z")
    }
}
