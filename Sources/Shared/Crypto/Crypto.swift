import CCrypto

/// The one place that talks to OpenSSL's libcrypto. Every EVP object is
/// created and freed inside the call that needs it, except what is worth
/// keeping: the SHA-256 algorithm (fetched once) and `HMACKey`'s keyed
/// context (owned by the key). No OpenSSL pointer leaves this file.
public enum Crypto {
    /// SHA-256, fetched from the provider once, for when the low-level
    /// interface fails. OpenSSL 3's one-shot `SHA256()` fetches the
    /// algorithm on every call (a locked lookup). A fetched EVP_MD is
    /// immutable and safe to share between threads; it lives as long as
    /// the process.
    nonisolated(unsafe) private static let sha256Digest: OpaquePointer? = EVP_MD_fetch(nil, "SHA256", nil)

    /// SHA-256 of `bytes`: every token decision hashes the presented
    /// token, so this takes the cheapest of OpenSSL's paths (see
    /// `pcl_sha256` in the CCrypto shim for the measurements).
    public static func sha256(_ input: UnsafeRawBufferPointer) -> SHA256Digest {
        var digest = SHA256Digest.zero
        withUnsafeMutableBytes(of: &digest.storage) { output in
            let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let data = input.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(out)
            if pcl_sha256(data, input.count, out) == 1 { return }
            if let md = sha256Digest {
                _ = EVP_Digest(data, input.count, out, nil, md, nil)
            } else {
                _ = SHA256(input.baseAddress?.assumingMemoryBound(to: UInt8.self), input.count, out)
            }
        }
        return digest
    }

    public static func sha256(_ bytes: [UInt8]) -> SHA256Digest {
        bytes.withUnsafeBytes { sha256($0) }
    }

    public static func sha256(_ string: String) -> SHA256Digest {
        var copy = string
        return copy.withUTF8 { sha256(UnsafeRawBufferPointer($0)) }
    }

    /// Compares two byte strings without an early exit, so the time taken
    /// does not tell an attacker how many leading bytes matched. Lengths are
    /// not secret here (digests and MACs have fixed sizes).
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { lhs in
            b.withUnsafeBytes { rhs in
                guard lhs.count == rhs.count else { return false }
                if lhs.count == 0 { return true }
                return CRYPTO_memcmp(lhs.baseAddress, rhs.baseAddress, lhs.count) == 0
            }
        }
    }

    /// Bytes from OpenSSL's CSPRNG.
    public static func randomBytes(_ count: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        guard ok == 1 else { throw CryptoError.randomUnavailable }
        return out
    }

    /// HMAC with SHA-256/384/512 (JWT HS* signatures).
    public static func hmac(_ algorithm: HMACAlgorithm, key: [UInt8], data: UnsafeRawBufferPointer) -> [UInt8] {
        let md: OpaquePointer? = switch algorithm {
        case .sha256: EVP_sha256()
        case .sha384: EVP_sha384()
        case .sha512: EVP_sha512()
        }
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        key.withUnsafeBytes { keyBytes in
            out.withUnsafeMutableBufferPointer { output in
                _ = HMAC(
                    md, keyBytes.baseAddress, Int32(keyBytes.count),
                    data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count,
                    output.baseAddress, &length
                )
            }
        }
        return Array(out.prefix(Int(length)))
    }

    public static let gcmNonceBytes = 12
    public static let gcmTagBytes = 16

    /// AES-256-GCM with a 12-byte nonce and no AAD. Returns nonce || ciphertext || tag.
    public static func aes256GCMSeal(key: [UInt8], nonce: [UInt8], plaintext: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard key.count == 32 else { throw CryptoError.badKey }
        guard nonce.count == gcmNonceBytes else { throw CryptoError.badInput }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError.cipherFailed }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count + 16)
        var tag = [UInt8](repeating: 0, count: gcmTagBytes)
        var written: Int32 = 0
        var total = 0
        guard EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(gcmNonceBytes), nil) == 1,
            EVP_EncryptInit_ex(ctx, nil, nil, key, nonce) == 1
        else { throw CryptoError.cipherFailed }
        if !plaintext.isEmpty {
            guard EVP_EncryptUpdate(ctx, &ciphertext, &written, plaintext, Int32(plaintext.count)) == 1 else {
                throw CryptoError.cipherFailed
            }
            total = Int(written)
        }
        let finalOK = ciphertext.withUnsafeMutableBufferPointer { EVP_EncryptFinal_ex(ctx, $0.baseAddress! + total, &written) }
        guard finalOK == 1 else { throw CryptoError.cipherFailed }
        total += Int(written)
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(gcmTagBytes), &tag) == 1 else {
            throw CryptoError.cipherFailed
        }
        return nonce + ciphertext.prefix(total) + tag
    }

    /// Opens nonce || ciphertext || tag sealed by `aes256GCMSeal`; a wrong key
    /// or any changed byte fails authentication.
    public static func aes256GCMOpen(key: [UInt8], sealed: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard key.count == 32 else { throw CryptoError.badKey }
        guard sealed.count >= gcmNonceBytes + gcmTagBytes else { throw CryptoError.badInput }
        let nonce = Array(sealed.prefix(gcmNonceBytes))
        let body = Array(sealed[gcmNonceBytes..<(sealed.count - gcmTagBytes)])
        var tag = Array(sealed.suffix(gcmTagBytes))
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError.cipherFailed }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var plaintext = [UInt8](repeating: 0, count: body.count + 16)
        var written: Int32 = 0
        var total = 0
        guard EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(gcmNonceBytes), nil) == 1,
            EVP_DecryptInit_ex(ctx, nil, nil, key, nonce) == 1
        else { throw CryptoError.cipherFailed }
        if !body.isEmpty {
            guard EVP_DecryptUpdate(ctx, &plaintext, &written, body, Int32(body.count)) == 1 else {
                throw CryptoError.authenticationFailed
            }
            total = Int(written)
        }
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(gcmTagBytes), &tag) == 1 else {
            throw CryptoError.cipherFailed
        }
        let finalOK = plaintext.withUnsafeMutableBufferPointer { EVP_DecryptFinal_ex(ctx, $0.baseAddress! + total, &written) }
        guard finalOK == 1 else { throw CryptoError.authenticationFailed }
        total += Int(written)
        return Array(plaintext.prefix(total))
    }
}

public enum HMACAlgorithm: Sendable {
    case sha256, sha384, sha512

    var digestName: String {
        switch self {
        case .sha256: "SHA256"
        case .sha384: "SHA384"
        case .sha512: "SHA512"
        }
    }
}

/// An HMAC key prepared once per profile. OpenSSL 3's one-shot `HMAC()`
/// fetches the MAC and the digest (locked lookups) and hashes the key
/// pads on every call; here a context is keyed once and each MAC starts
/// from a copy of it (uncached HS256 decisions: 20-25 µs -> 18.5-21 µs).
/// The keyed context is never changed after `init`, only duplicated, so
/// sharing it between threads is safe.
public final class HMACKey: @unchecked Sendable {
    nonisolated(unsafe) private static let hmacAlgorithm: OpaquePointer? = EVP_MAC_fetch(nil, "HMAC", nil)

    public let algorithm: HMACAlgorithm
    private let key: [UInt8]
    private let keyed: OpaquePointer?

    public init(_ algorithm: HMACAlgorithm, key: [UInt8]) {
        self.algorithm = algorithm
        self.key = key
        self.keyed = Self.makeKeyed(algorithm, key: key)
    }

    deinit {
        if let keyed { EVP_MAC_CTX_free(keyed) }
    }

    private static func makeKeyed(_ algorithm: HMACAlgorithm, key: [UInt8]) -> OpaquePointer? {
        guard !key.isEmpty, let mac = hmacAlgorithm, let context = EVP_MAC_CTX_new(mac) else { return nil }
        let ok = "digest".withCString { name in
            algorithm.digestName.withCString { digest in
                var params = [
                    OSSL_PARAM_construct_utf8_string(name, UnsafeMutablePointer(mutating: digest), 0),
                    OSSL_PARAM_construct_end(),
                ]
                return key.withUnsafeBufferPointer { EVP_MAC_init(context, $0.baseAddress, $0.count, &params) }
            }
        }
        guard ok == 1 else {
            EVP_MAC_CTX_free(context)
            return nil
        }
        return context
    }

    /// The MAC of `data`; the same bytes as `Crypto.hmac` with this key
    /// (which it falls back to if the provider could not key a context).
    public func mac(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        guard let keyed = self.keyed, let context = EVP_MAC_CTX_dup(keyed) else {
            return Crypto.hmac(self.algorithm, key: self.key, data: data)
        }
        defer { EVP_MAC_CTX_free(context) }
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length = 0
        let ok = out.withUnsafeMutableBufferPointer { output -> Bool in
            let input = data.baseAddress?.assumingMemoryBound(to: UInt8.self)
            return (data.isEmpty || EVP_MAC_update(context, input, data.count) == 1)
                && EVP_MAC_final(context, output.baseAddress, &length, output.count) == 1
        }
        guard ok else { return Crypto.hmac(self.algorithm, key: self.key, data: data) }
        out.removeLast(out.count - length)
        return out
    }
}

public enum CryptoError: Error, Equatable, Sendable {
    case randomUnavailable
    case badKey
    case badInput
    case cipherFailed
    case authenticationFailed
}

/// 32 bytes held inline; compared in constant time.
public struct SHA256Digest: Hashable, Sendable, CustomStringConvertible {
    var storage: (UInt64, UInt64, UInt64, UInt64)

    static let zero = SHA256Digest(storage: (0, 0, 0, 0))

    public init?(hex: String) {
        guard let bytes = Hex.decode(hex), bytes.count == 32 else { return nil }
        var digest = SHA256Digest.zero
        withUnsafeMutableBytes(of: &digest.storage) { $0.copyBytes(from: bytes) }
        self = digest
    }

    /// A certificate fingerprint as operators and proxies write it: 64 hex
    /// digits, optionally in colon-separated pairs (`AB:CD:…`), any case.
    public init?(fingerprint text: String) {
        let trimmed = text.trimmingASCIIWhitespace()
        let hex = trimmed.contains(":") ? trimmed.split(separator: ":", omittingEmptySubsequences: false).joined() : String(trimmed)
        if trimmed.contains(":") && trimmed.split(separator: ":", omittingEmptySubsequences: false).contains(where: { $0.utf8.count != 2 }) {
            return nil
        }
        self.init(hex: hex)
    }

    init(storage: (UInt64, UInt64, UInt64, UInt64)) { self.storage = storage }

    public var bytes: [UInt8] { withUnsafeBytes(of: self.storage) { Array($0) } }
    public var hex: String { Hex.encode(self.bytes) }
    public var description: String { self.hex }

    public func constantTimeEquals(_ other: SHA256Digest) -> Bool {
        withUnsafeBytes(of: self.storage) { lhs in
            withUnsafeBytes(of: other.storage) { rhs in
                CRYPTO_memcmp(lhs.baseAddress, rhs.baseAddress, 32) == 0
            }
        }
    }

    public static func == (lhs: SHA256Digest, rhs: SHA256Digest) -> Bool { lhs.constantTimeEquals(rhs) }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.storage.0)
        hasher.combine(self.storage.1)
        hasher.combine(self.storage.2)
        hasher.combine(self.storage.3)
    }
}

public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Upper or lower case; nil on odd length or a non-hex character.
    public static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
