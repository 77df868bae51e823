/// The `ENCRYPTION_KEY`: 32 bytes given as 64 hex digits or as base64.
/// Its id (`kid`) is the first 8 hex digits of its SHA-256, stored in every
/// ciphertext so a value sealed under another key is named as such instead
/// of failing as "corrupt".
public struct EncryptionKey: Sendable {
    public let bytes: [UInt8]
    public let kid: String
    /// Keys still accepted for decryption while a rotation is under way
    /// (`ENCRYPTION_KEY_PREVIOUS`): values are always sealed under `self`.
    public var previous: [EncryptionKey] = []

    public init(parsing text: String) throws(SecretError) {
        let trimmed = String(text.trimmingASCIIWhitespace())
        let decoded: [UInt8]?
        if trimmed.utf8.count == 64, let hex = Hex.decode(trimmed) {
            decoded = hex
        } else {
            decoded = Base64.decode(trimmed) ?? Base64.decodeURL(trimmed.utf8)
        }
        guard let key = decoded, key.count == 32 else { throw SecretError.badKey }
        self.bytes = key
        self.kid = String(Crypto.sha256(key).hex.prefix(8))
    }

    /// nil when the variable is unset or empty: only configs holding `enc:`
    /// values need a key, and they fail with `missingKey` on their own.
    public static func fromEnvironment(_ environment: [String: String]) throws(SecretError) -> EncryptionKey? {
        guard let text = environment["ENCRYPTION_KEY"], !text.isEmpty else { return nil }
        var key = try EncryptionKey(parsing: text)
        for item in (environment["ENCRYPTION_KEY_PREVIOUS"] ?? "").split(separator: ",") where !item.trimmingASCIIWhitespace().isEmpty {
            key.previous.append(try EncryptionKey(parsing: String(item)))
        }
        return key
    }

    /// The key that sealed a value with id `kid`, if we hold it.
    public func matching(kid: String) -> EncryptionKey? {
        if kid == self.kid { return self }
        return self.previous.first { $0.kid == kid }
    }
}

public enum SecretError: Error, Equatable, Sendable, CustomStringConvertible {
    case missingKey
    case badKey
    case missingVariable(String)
    case wrongKey(valueKid: String, keyKid: String)
    case malformed
    case undecryptable
    case plaintext

    public var description: String {
        switch self {
        case .missingKey: return "value is encrypted (enc:v1) but ENCRYPTION_KEY is not set"
        case .badKey: return "ENCRYPTION_KEY (and each ENCRYPTION_KEY_PREVIOUS entry) must be 32 bytes as 64 hex digits or base64"
        case .missingVariable(let name): return "environment variable \(name) is not set"
        case .wrongKey(let valueKid, let keyKid):
            return "value was encrypted under key \(valueKid) but ENCRYPTION_KEY is \(keyKid)"
        case .malformed: return "not a valid enc:v1:<kid>:<base64> value"
        case .undecryptable: return "value does not decrypt under ENCRYPTION_KEY (corrupt or altered)"
        case .plaintext:
            return "secrets are never stored in plaintext: use enc:v1:... (portcullis secret encrypt) or a $ENV_VAR reference"
        }
    }
}

/// Stored secret values: `enc:v1:<kid>:<base64(nonce|ciphertext|tag)>` or
/// `$ENV_VAR` (SPEC §4, §9). Plaintext is refused.
public enum SecretValue {
    public static let prefix = "enc:v1:"

    public static func encrypt(_ plaintext: String, key: EncryptionKey) throws(CryptoError) -> String {
        let nonce = try Crypto.randomBytes(Crypto.gcmNonceBytes)
        let sealed = try Crypto.aes256GCMSeal(key: key.bytes, nonce: nonce, plaintext: Array(plaintext.utf8))
        return "\(prefix)\(key.kid):\(Base64.encode(sealed))"
    }

    public static func isReference(_ stored: String) -> Bool {
        stored.hasPrefix(prefix) || isEnvironmentReference(stored)
    }

    static func isEnvironmentReference(_ stored: String) -> Bool {
        guard stored.hasPrefix("$") else { return false }
        let name = stored.utf8.dropFirst()
        guard let first = name.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return name.allSatisfy { c in
            c == UInt8(ascii: "_") || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
                || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
        }
    }

    public static func resolve(_ stored: String, key: EncryptionKey?, environment: [String: String]) throws(SecretError) -> String {
        if isEnvironmentReference(stored) {
            let name = String(stored.dropFirst())
            guard let value = environment[name], !value.isEmpty else { throw SecretError.missingVariable(name) }
            return value
        }
        guard stored.hasPrefix(prefix) else { throw SecretError.plaintext }
        let rest = stored.dropFirst(prefix.count)
        let parts = rest.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].utf8.count == 8, let sealed = Base64.decode(String(parts[1])) else {
            throw SecretError.malformed
        }
        guard let primary = key else { throw SecretError.missingKey }
        guard let key = primary.matching(kid: String(parts[0]).lowercased()) else {
            throw SecretError.wrongKey(valueKid: String(parts[0]), keyKid: primary.kid)
        }
        let plaintext: [UInt8]
        do {
            plaintext = try Crypto.aes256GCMOpen(key: key.bytes, sealed: sealed)
        } catch {
            throw SecretError.undecryptable
        }
        guard let text = String(validating: plaintext, as: UTF8.self) else { throw SecretError.undecryptable }
        return text
    }
}

/// Gateway-issued opaque tokens: `pcl_` + 256 random bits (base64url).
public enum GatewayToken {
    public static let prefix = "pcl_"

    public static func generate() throws(CryptoError) -> String {
        prefix + Base64.encodeURL(try Crypto.randomBytes(32))
    }
}
