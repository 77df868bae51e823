import Shared

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
        out += ISOTime.format(unixMillis: self.unixMillis)
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
}
