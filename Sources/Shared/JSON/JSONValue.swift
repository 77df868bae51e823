/// A parsed JSON value (RFC 8259), for what arrives from outside: JWT
/// headers and claims, JWKS documents, OIDC discovery. Stricter than
/// Foundation on purpose: a duplicate object key is an error (two `sub`
/// claims must not mean "the last one wins" to us and "the first" to the
/// signer), nesting is bounded, and nothing but whitespace may follow.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var number: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var array: [JSONValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    public var object: [String: JSONValue]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// A whole number within ±2^53 (JWT NumericDate); fractions are floored
    /// as RFC 7519 allows, anything else is nil.
    public var integer: Int64? {
        guard case .number(let value) = self, value.isFinite, abs(value) <= 9_007_199_254_740_992 else { return nil }
        return Int64(value.rounded(.down))
    }

    /// Follows a dotted path (`realm_access.roles`) through nested objects.
    public func value(atPath path: String) -> JSONValue? {
        var current: JSONValue? = self
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            current = current?[String(part)]
        }
        return current
    }

    /// Claim comparison for `required_claims`: a configured string matches
    /// a string claim exactly, or the JSON text of a number or boolean.
    public func matches(_ expected: String) -> Bool {
        switch self {
        case .string(let value): return value == expected
        case .bool(let value): return (value ? "true" : "false") == expected
        case .number(let value):
            if let whole = self.integer, Double(whole) == value { return String(whole) == expected }
            return Double(expected) == value
        default: return false
        }
    }

    public static func parse(_ bytes: [UInt8], maxDepth: Int = 32) throws(JSONParseError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { buffer throws(JSONParseError) in
            var parser = JSONParser(bytes: buffer, maxDepth: maxDepth)
            let value = try parser.parseValue(depth: 0)
            parser.skipWhitespace()
            guard parser.index == buffer.count else { throw JSONParseError("trailing data at byte \(parser.index)") }
            return value
        }
    }
}

public struct JSONParseError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case 0x20, 0x09, 0x0A, 0x0D: self.index += 1
            default: return
            }
        }
    }

    private func fail(_ what: String) -> JSONParseError {
        JSONParseError("\(what) at byte \(self.index)")
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= self.maxDepth else { throw self.fail("nesting too deep") }
        self.skipWhitespace()
        guard self.index < self.bytes.count else { throw self.fail("unexpected end") }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"): return try self.parseObject(depth: depth)
        case UInt8(ascii: "["): return try self.parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try self.parseString())
        case UInt8(ascii: "t"): try self.literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try self.literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try self.literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try self.parseNumber())
        default: throw self.fail("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let count = word.utf8CodeUnitCount
        guard self.index + count <= self.bytes.count else { throw self.fail("unexpected end") }
        for offset in 0..<count where self.bytes[self.index + offset] != word.utf8Start[offset] {
            throw self.fail("unexpected literal")
        }
        self.index += count
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        self.index += 1
        // Room for a typical JWT header or claim set without regrowing.
        var members = [String: JSONValue](minimumCapacity: 8)
        self.skipWhitespace()
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "}") {
            self.index += 1
            return .object(members)
        }
        while true {
            self.skipWhitespace()
            guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\"") else {
                throw self.fail("expected a member name")
            }
            let key = try self.parseString()
            self.skipWhitespace()
            guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ":") else { throw self.fail("expected ':'") }
            self.index += 1
            let value = try self.parseValue(depth: depth + 1)
            guard members.updateValue(value, forKey: key) == nil else { throw self.fail("duplicate member \"\(key)\"") }
            self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.fail("unexpected end") }
            let next = self.bytes[self.index]
            self.index += 1
            if next == UInt8(ascii: "}") { return .object(members) }
            guard next == UInt8(ascii: ",") else { throw self.fail("expected ',' or '}'") }
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        self.index += 1
        var values: [JSONValue] = []
        self.skipWhitespace()
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "]") {
            self.index += 1
            return .array(values)
        }
        while true {
            values.append(try self.parseValue(depth: depth + 1))
            self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.fail("unexpected end") }
            let next = self.bytes[self.index]
            self.index += 1
            if next == UInt8(ascii: "]") { return .array(values) }
            guard next == UInt8(ascii: ",") else { throw self.fail("expected ',' or ']'") }
        }
    }

    private mutating func parseNumber() throws(JSONParseError) -> Double {
        let start = self.index
        let negative = self.bytes[self.index] == UInt8(ascii: "-")
        if negative { self.index += 1 }
        guard self.index < self.bytes.count else { throw self.fail("bad number") }
        let integerStart = self.index
        if self.bytes[self.index] == UInt8(ascii: "0") {
            self.index += 1
        } else {
            guard self.digits() > 0 else { throw self.fail("bad number") }
        }
        // Fast path for whole numbers of up to 15 digits (every NumericDate):
        // exact in a Double, so no text round trip through strtod.
        let integerEnd = self.index
        if integerEnd - integerStart <= 15, integerEnd == self.bytes.count || !Self.continuesNumber(self.bytes[integerEnd]) {
            var value: Int64 = 0
            for index in integerStart..<integerEnd { value = value * 10 + Int64(self.bytes[index] &- UInt8(ascii: "0")) }
            return negative ? -Double(value) : Double(value)
        }
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ".") {
            self.index += 1
            guard self.digits() > 0 else { throw self.fail("bad number") }
        }
        if self.index < self.bytes.count, self.bytes[self.index] | 0x20 == UInt8(ascii: "e") {
            self.index += 1
            if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "+") || self.bytes[self.index] == UInt8(ascii: "-") {
                self.index += 1
            }
            guard self.digits() > 0 else { throw self.fail("bad number") }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: self.bytes[start..<self.index]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw self.fail("bad number") }
        return value
    }

    /// A fraction or exponent follows the integer part.
    private static func continuesNumber(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: ".") || byte | 0x20 == UInt8(ascii: "e")
    }

    private mutating func digits() -> Int {
        let start = self.index
        while self.index < self.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self.bytes[self.index]) {
            self.index += 1
        }
        return self.index - start
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        self.index += 1
        let start = self.index
        // Fast path: no escapes. Pure ASCII (every claim name and most
        // values) needs no UTF-8 validation and is copied as is; anything
        // else is validated once by String(validating:).
        var high: UInt8 = 0
        while self.index < self.bytes.count {
            let c = self.bytes[self.index]
            if c == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(rebasing: self.bytes[start..<self.index])
                self.index += 1
                if high < 0x80 { return Self.ascii(raw) }
                guard let text = String(validating: raw, as: UTF8.self) else { throw self.fail("invalid UTF-8") }
                return text
            }
            if c == UInt8(ascii: "\\") { break }
            guard c >= 0x20 else { throw self.fail("control character in string") }
            high |= c
            self.index += 1
        }
        var out = Array(self.bytes[start..<self.index])
        while self.index < self.bytes.count {
            let c = self.bytes[self.index]
            self.index += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let text = String(validating: out, as: UTF8.self) else { throw self.fail("invalid UTF-8") }
                return text
            case UInt8(ascii: "\\"):
                guard self.index < self.bytes.count else { throw self.fail("unexpected end") }
                let escape = self.bytes[self.index]
                self.index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try self.hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        // A high surrogate must be followed by \u + a low one.
                        guard self.index + 1 < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\\"),
                            self.bytes[self.index + 1] == UInt8(ascii: "u")
                        else { throw self.fail("lone surrogate") }
                        self.index += 2
                        let low = try self.hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw self.fail("lone surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw self.fail("lone surrogate")
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw self.fail("bad escape") }
                    out.append(contentsOf: Array(String(Character(unicode)).utf8))
                default:
                    throw self.fail("bad escape")
                }
            default:
                guard c >= 0x20 else { throw self.fail("control character in string") }
                out.append(c)
            }
        }
        throw self.fail("unterminated string")
    }

    /// `raw` is ASCII: valid UTF-8 as it stands.
    private static func ascii(_ raw: UnsafeBufferPointer<UInt8>) -> String {
        String(unsafeUninitializedCapacity: raw.count) { out in
            _ = out.initialize(fromContentsOf: raw)
            return raw.count
        }
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard self.index + 4 <= self.bytes.count else { throw self.fail("bad escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = self.bytes[self.index]
            let digit: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw self.fail("bad escape")
            }
            value = value << 4 | digit
            self.index += 1
        }
        return value
    }
}
