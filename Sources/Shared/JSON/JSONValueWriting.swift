/// Writing JSON values back out, and RFC 7396 merge patches (the management
/// API's PATCH).
extension JSONValue {
    /// Compact JSON with object keys sorted, so equal values print equally.
    /// Integral numbers within ±2^53 print without a fraction.
    public var serialized: String {
        var out = ""
        self.write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .number(let value):
            if value.rounded() == value, abs(value) <= 9_007_199_254_740_992 {
                out += String(Int64(value))
            } else if value.isFinite {
                out += "\(value)"
            } else {
                out += "null"
            }
        case .string(let value): JSON.appendString(value, to: &out)
        case .array(let values):
            out += "["
            for (index, value) in values.enumerated() {
                if index > 0 { out += "," }
                value.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (index, member) in members.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out += "," }
                JSON.appendString(member.key, to: &out)
                out += ":"
                member.value.write(to: &out)
            }
            out += "}"
        }
    }

    /// RFC 7396: members of an object patch replace, `null` removes, and a
    /// patch that is not an object replaces the whole target.
    public func mergePatched(with patch: JSONValue) -> JSONValue {
        guard case .object(let changes) = patch else { return patch }
        var members: [String: JSONValue]
        if case .object(let existing) = self { members = existing } else { members = [:] }
        for (key, change) in changes {
            if change == .null {
                members.removeValue(forKey: key)
            } else {
                members[key] = (members[key] ?? .null).mergePatched(with: change)
            }
        }
        return .object(members)
    }

    /// A copy with the values of the named keys, at any depth, replaced.
    public func redacting(_ keys: Set<String>, with replacement: JSONValue = .string("[redacted]")) -> JSONValue {
        switch self {
        case .object(let members):
            var out: [String: JSONValue] = [:]
            for (key, value) in members { out[key] = keys.contains(key) && value != .null ? replacement : value.redacting(keys, with: replacement) }
            return .object(out)
        case .array(let values): return .array(values.map { $0.redacting(keys, with: replacement) })
        default: return self
        }
    }
}
