import Shared

#if canImport(Glibc)
import Glibc
#endif

/// One line of the decision log (SPEC §2): which client and profile, which
/// policy applied, what was answered and why. The path is logged without its
/// query string, which routinely carries secrets (`?api_key=`).
struct DecisionRecord {
    var unixMillis: Int64
    var requestID: String
    var clientID: String
    var profileID: String
    var authType: String
    var policyID: String
    var collection: String
    var method: String
    var path: String
    var status: Int
    var reason: String
    var worker: Int
    var latencyMicros: Int64

    func jsonLine() -> String {
        var out = ""
        out.reserveCapacity(320)
        out += "{\"time\":\""
        out += Self.isoTime(unixMillis: self.unixMillis)
        out += "\",\"request_id\":"
        JSON.appendString(self.requestID, to: &out)
        out += ",\"client_id\":"
        JSON.appendString(self.clientID, to: &out)
        out += ",\"profile_id\":"
        JSON.appendString(self.profileID, to: &out)
        out += ",\"auth_type\":"
        JSON.appendString(self.authType, to: &out)
        out += ",\"policy_id\":"
        JSON.appendString(self.policyID, to: &out)
        out += ",\"collection\":"
        JSON.appendString(self.collection, to: &out)
        out += ",\"method\":"
        JSON.appendString(self.method, to: &out)
        out += ",\"path\":"
        let queryStart = self.path.utf8.firstIndex(of: UInt8(ascii: "?")) ?? self.path.utf8.endIndex
        JSON.appendString(String(self.path[..<queryStart]), to: &out)
        out += ",\"status\":\(self.status),\"reason\":"
        JSON.appendString(self.reason, to: &out)
        out += ",\"worker\":\(self.worker),\"latency_ms\":"
        out += Self.millis(self.latencyMicros)
        out += "}\n"
        return out
    }

    static func millis(_ micros: Int64) -> String {
        let whole = micros / 1000
        let fraction = micros % 1000
        let pad = fraction < 10 ? "00" : (fraction < 100 ? "0" : "")
        return "\(whole).\(pad)\(fraction)"
    }

    /// `2026-11-22T14:41:00.123Z`
    static func isoTime(unixMillis: Int64) -> String {
        var seconds = time_t(unixMillis / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = Int(unixMillis % 1000)
        let msText = ms < 10 ? "00\(ms)" : (ms < 100 ? "0\(ms)" : "\(ms)")
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(msText)Z"
    }
}
