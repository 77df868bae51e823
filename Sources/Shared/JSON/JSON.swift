/// Minimal JSON writing for the hot paths (error bodies, decision-log lines),
/// where Foundation's JSONEncoder would cost more than the request itself.
public enum JSON {
    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Appends `value` as a quoted JSON string, escaping quotes, backslashes
    /// and control characters (RFC 8259 §7). Input is valid Unicode already
    /// (a Swift String), so no other byte needs care.
    public static func appendString(_ value: String, to out: inout String) {
        out.unicodeScalars.append("\"")
        var needsEscape = false
        for byte in value.utf8 where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
            needsEscape = true
            break
        }
        if !needsEscape {
            out += value
        } else {
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20:
                    out += "\\u00"
                    out.unicodeScalars.append(UnicodeScalar(hexDigits[Int(scalar.value >> 4)]))
                    out.unicodeScalars.append(UnicodeScalar(hexDigits[Int(scalar.value & 0xF)]))
                default:
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.unicodeScalars.append("\"")
    }

    public static func quoted(_ value: String) -> String {
        var out = ""
        appendString(value, to: &out)
        return out
    }
}
