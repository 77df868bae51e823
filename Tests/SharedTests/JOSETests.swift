import Shared
import Testing

/// The pieces of JOSE that live in Shared: the strict JSON parser, JWK
/// keys through OpenSSL, the URLs the router fetches keys from.
@Suite("JSON, JWK keys, fetch URLs")
struct JOSETests {
    @Test func jsonParsesWhatJWTsHold() throws {
        let value = try JSONValue.parse(Array(#"{"a":"x\u00e9\n","n":-1.5e2,"t":true,"z":null,"arr":[1,{"b":[]}],"emoji":"\ud83d\ude00"}"#.utf8))
        #expect(value["a"]?.string == "x\u{e9}\n")
        #expect(value["n"]?.number == -150)
        #expect(value["t"]?.bool == true)
        #expect(value["z"] == .null)
        #expect(value["arr"]?.array?.count == 2)
        #expect(value["emoji"]?.string == "\u{1F600}")
        #expect(try JSONValue.parse(Array(#"{"exp":1767225600.9}"#.utf8))["exp"]?.integer == 1_767_225_600)
        #expect(try JSONValue.parse(Array(#"{"r":{"roles":["a"]}}"#.utf8)).value(atPath: "r.roles")?.array?.count == 1)
    }

    /// Whole numbers of up to 15 digits and escape-free ASCII strings take
    /// fast paths; everything else the general ones. Both must agree.
    @Test func jsonFastAndGeneralPathsAgree() throws {
        let numbers = ["0", "-0", "7", "-42", "1767225600", "999999999999999", "-999999999999999", "1234567890123456789", "1.5", "2e3", "-0.25E-2", "10E2"]
        for text in numbers {
            let parsed = try JSONValue.parse(Array("[\(text)]".utf8)).array?.first?.number
            #expect(parsed == Double(text), "\(text)")
        }
        #expect(try JSONValue.parse(Array("-0".utf8)).number?.sign == .minus)
        let value = try JSONValue.parse(Array("{\"ascii\":\"plain-text_1\",\"utf8\":\"caf\u{e9} \u{1F600}\",\"empty\":\"\"}".utf8))
        #expect(value["ascii"]?.string == "plain-text_1")
        #expect(value["utf8"]?.string == "caf\u{e9} \u{1F600}")
        #expect(value["empty"]?.string == "")
        // Raw bytes that are not UTF-8 are refused on the unescaped path too.
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array("{\"a\":\"".utf8) + [0xC3, 0x28] + Array("\"}".utf8)) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array("{\"a\":\"".utf8) + [0xFF] + Array("\"}".utf8)) }
    }

    @Test(arguments: [
        #"{"sub":"a","sub":"b"}"#, #"{"a":1,}"#, "[1,2", #"{"a":01}"#, #"{"a":"\ud800"}"#, "{\"a\":\"tab\tin\"}",
        #"{"a":1} x"#, "", "nul", #"{"a":.5}"#, "-", "[-]", "[1.]", "[1e]", "[00]", "[-01]", String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
    ])
    func jsonRefusesAmbiguousOrBrokenInput(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func jwkRoundTripsThroughOpenSSL() throws {
        for (family, alg) in [(AsymmetricKey.Family.rsa, JWSAlgorithm.rs256), (.ec(.p256), .es256), (.ec(.p384), .es384)] {
            let key = try AsymmetricKey.generate(family)
            let jwk = try JSONValue.parse(Array(key.publicJWK(kid: "k", alg: alg).utf8))
            let imported = try AsymmetricKey.fromJWK(jwk)
            let message = Array("header.payload".utf8)
            let signature = try key.sign(alg, message: message)
            #expect(message.withUnsafeBytes { imported.verify(alg, message: $0, signature: signature) })
            var tampered = signature
            tampered[tampered.count / 2] ^= 1
            #expect(!message.withUnsafeBytes { imported.verify(alg, message: $0, signature: tampered) })
            // A key never verifies for another family's algorithm.
            #expect(!message.withUnsafeBytes { imported.verify(family == .rsa ? .es256 : .rs256, message: $0, signature: signature) })
        }
    }

    @Test func jwkRefusesWeakOrBrokenKeys() throws {
        let small = try AsymmetricKey.generate(.rsa, rsaBits: 1024)
        let jwk = try JSONValue.parse(Array(small.publicJWK(kid: "k", alg: .rs256).utf8))
        #expect(throws: KeyError.self) { try AsymmetricKey.fromJWK(jwk) }
        let offCurve = try JSONValue.parse(Array(#"{"kty":"EC","crv":"P-256","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#.utf8))
        #expect(throws: KeyError.self) { try AsymmetricKey.fromJWK(offCurve) }
        #expect(throws: KeyError.self) { try AsymmetricKey.fromJWK(try JSONValue.parse(Array(#"{"kty":"oct","k":"AAAA"}"#.utf8))) }
        #expect(throws: KeyError.self) { try AsymmetricKey.fromJWK(try JSONValue.parse(Array(#"{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}"#.utf8))) }
    }

    @Test func fetchURLsAreHTTPSOrLoopback() {
        #expect(FetchURL("https://idp.example.com/realms/a")?.target == "/realms/a")
        #expect(FetchURL("https://idp.example.com")?.target == "/")
        #expect(FetchURL("https://idp.example.com:8443/k?x=1")?.authority == "idp.example.com:8443")
        #expect(FetchURL("http://127.0.0.1:8080/jwks") != nil)
        #expect(FetchURL("http://[::1]:8080/jwks") != nil)
        #expect(FetchURL("http://localhost/jwks") != nil)
        #expect(FetchURL("http://idp.example.com/jwks") == nil)
        #expect(FetchURL("http://10.0.0.1/jwks") == nil)
        #expect(FetchURL("ftp://idp.example.com") == nil)
        #expect(FetchURL("https://user@idp.example.com") == nil)
        #expect(FetchURL.discovery(issuer: "https://idp.example.com/realms/a/")?.description
            == "https://idp.example.com/realms/a/.well-known/openid-configuration")
    }

    @Test func fingerprintsWithOrWithoutColons() {
        let hex = String(repeating: "0a", count: 32)
        #expect(SHA256Digest(fingerprint: hex) != nil)
        #expect(SHA256Digest(fingerprint: Array(repeating: "0A", count: 32).joined(separator: ":")) == SHA256Digest(fingerprint: hex))
        #expect(SHA256Digest(fingerprint: "0a:0") == nil)
        #expect(SHA256Digest(fingerprint: String(hex.dropLast())) == nil)
    }
}
