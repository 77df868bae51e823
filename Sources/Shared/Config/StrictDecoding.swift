/// Decoding helpers shared by the config types.
///
/// Unknown keys are errors: a typo such as `alowed_ips` must not silently
/// drop an allowlist (fail open). Each config type lists its keys in a
/// `CaseIterable` `CodingKeys` and calls `rejectUnknownKeys` first.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension Decoder {
    func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        let container = try self.container(keyedBy: AnyCodingKey.self)
        // A linear scan of a dozen keys: no Set built per object (100,000
        // clients are decoded at start-up).
        for key in container.allKeys where !Keys.allCases.contains(where: { $0.stringValue == key.stringValue }) {
            let expected = Keys.allCases.map(\.stringValue).joined(separator: ", ")
            throw DecodingError.dataCorrupted(
                .init(codingPath: self.codingPath + [key], debugDescription: "unknown key (expected one of: \(expected))"))
        }
    }
}

extension KeyedDecodingContainer {
    func decode<T: Decodable>(_ key: Key, default value: T) throws -> T {
        try self.decodeIfPresent(T.self, forKey: key) ?? value
    }
}

/// `clients[0].profiles[1].auth.type` from a Codable coding path.
public func configPath(_ codingPath: [any CodingKey]) -> String {
    var out = ""
    for key in codingPath {
        if let index = key.intValue {
            out += "[\(index)]"
        } else {
            if !out.isEmpty { out += "." }
            out += key.stringValue
        }
    }
    return out
}
