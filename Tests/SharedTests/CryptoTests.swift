import Testing

@testable import Shared

@Suite("Crypto through libcrypto")
struct CryptoTests {
    @Test("SHA-256 matches FIPS 180-2 vectors")
    func sha256Vectors() {
        #expect(Crypto.sha256("abc").hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Crypto.sha256("").hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("HMAC-SHA256 matches RFC 4231 test case 2")
    func hmacVector() {
        let data = Array("what do ya want for nothing?".utf8)
        let mac = data.withUnsafeBytes { Crypto.hmac(.sha256, key: Array("Jefe".utf8), data: $0) }
        #expect(Hex.encode(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test("A prepared HMACKey gives RFC 4231 test case 2 for SHA-256/384/512, call after call")
    func preparedHMACKey() {
        let data = Array("what do ya want for nothing?".utf8)
        let expected: [(HMACAlgorithm, String)] = [
            (.sha256, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (.sha384, "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"),
            (.sha512,
             "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
        ]
        for (algorithm, hex) in expected {
            let key = HMACKey(algorithm, key: Array("Jefe".utf8))
            // Twice: each MAC must start from the keyed state, not from where the last one ended.
            for _ in 0..<2 { #expect(Hex.encode(data.withUnsafeBytes { key.mac($0) }) == hex) }
            #expect(Hex.encode(data.withUnsafeBytes { Crypto.hmac(algorithm, key: Array("Jefe".utf8), data: $0) }) == hex)
        }
        let key = HMACKey(.sha256, key: Array("Jefe".utf8))
        let empty = [UInt8]().withUnsafeBytes { key.mac($0) }
        #expect(empty == [UInt8]().withUnsafeBytes { Crypto.hmac(.sha256, key: Array("Jefe".utf8), data: $0) })
    }

    @Test func constantTimeComparison() {
        #expect(Crypto.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!Crypto.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!Crypto.constantTimeEquals([1, 2, 3], [1, 2]))
        let a = Crypto.sha256("token-a")
        #expect(a.constantTimeEquals(Crypto.sha256("token-a")))
        #expect(!a.constantTimeEquals(Crypto.sha256("token-b")))
        #expect(SHA256Digest(hex: a.hex) == a)
        #expect(SHA256Digest(hex: "zz") == nil)
    }

    @Test("AES-256-GCM seals, opens, and detects tampering")
    func aesGCM() throws {
        let key = try Crypto.randomBytes(32)
        let nonce = try Crypto.randomBytes(12)
        let sealed = try Crypto.aes256GCMSeal(key: key, nonce: nonce, plaintext: Array("backend-secret".utf8))
        #expect(sealed.count == 12 + 14 + 16)
        #expect(try Crypto.aes256GCMOpen(key: key, sealed: sealed) == Array("backend-secret".utf8))
        for index in [0, 12, sealed.count - 1] {
            var tampered = sealed
            tampered[index] ^= 1
            #expect(throws: CryptoError.authenticationFailed) { try Crypto.aes256GCMOpen(key: key, sealed: tampered) }
        }
        let otherKey = try Crypto.randomBytes(32)
        #expect(throws: CryptoError.authenticationFailed) { try Crypto.aes256GCMOpen(key: otherKey, sealed: sealed) }
        #expect(throws: CryptoError.badInput) { try Crypto.aes256GCMOpen(key: key, sealed: [1, 2, 3]) }
    }

    @Test("enc:v1 values resolve under their key and name the problem otherwise")
    func secretValues() throws {
        let key = try EncryptionKey(parsing: Hex.encode(try Crypto.randomBytes(32)))
        let stored = try SecretValue.encrypt("s3cret", key: key)
        #expect(stored.hasPrefix("enc:v1:\(key.kid):"))
        #expect(try SecretValue.resolve(stored, key: key, environment: [:]) == "s3cret")
        #expect(throws: SecretError.missingKey) { try SecretValue.resolve(stored, key: nil, environment: [:]) }
        let other = try EncryptionKey(parsing: Base64.encode(try Crypto.randomBytes(32)))
        #expect(throws: SecretError.wrongKey(valueKid: key.kid, keyKid: other.kid)) {
            try SecretValue.resolve(stored, key: other, environment: [:])
        }
        #expect(try SecretValue.resolve("$API_KEY", key: nil, environment: ["API_KEY": "v"]) == "v")
        #expect(throws: SecretError.missingVariable("API_KEY")) { try SecretValue.resolve("$API_KEY", key: nil, environment: [:]) }
        #expect(throws: SecretError.plaintext) { try SecretValue.resolve("hunter2", key: key, environment: [:]) }
        #expect(throws: SecretError.malformed) { try SecretValue.resolve("enc:v1:nokid", key: key, environment: [:]) }
        #expect(throws: SecretError.badKey) { try EncryptionKey(parsing: "too-short") }
    }

    @Test("base64 decoding is strict")
    func base64() {
        #expect(Base64.encode(Array("hello".utf8)) == "aGVsbG8=")
        #expect(Base64.decode("aGVsbG8=") == Array("hello".utf8))
        #expect(Base64.encodeURL([0xFB, 0xFF]) == "-_8")
        #expect(Base64.decodeURL("-_8".utf8) == [0xFB, 0xFF])
        #expect(Base64.decode("aGVsbG8") == nil)  // missing padding
        #expect(Base64.decode("aGVsbG9=") == nil)  // non-zero trailing bits
        #expect(Base64.decode("aGV sbG8=") == nil)
        #expect(Base64.decodeURL("a".utf8) == nil)
        #expect(Base64.decode("-_8=") == nil)  // url alphabet in standard
    }

    @Test func gatewayTokensAreLongAndDistinct() throws {
        let a = try GatewayToken.generate()
        let b = try GatewayToken.generate()
        #expect(a.hasPrefix("pcl_"))
        #expect(a.count == 4 + 43)
        #expect(a != b)
    }

    @Test func jsonEscaping() {
        #expect(JSON.quoted("plain") == "\"plain\"")
        #expect(JSON.quoted("a\"b\\c\nd\u{01}") == "\"a\\\"b\\\\c\\nd\\u0001\"")
        #expect(JSON.quoted("ü") == "\"ü\"")
    }
}
