import CCrypto

#if canImport(Glibc)
import Glibc
#endif

/// JWS algorithms (RFC 7518 §3) this gateway verifies. Which ones a profile
/// accepts is its own allow-list; `none` is not representable at all.
public enum JWSAlgorithm: String, Sendable, CaseIterable, Hashable {
    case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case ps256 = "PS256"
    case es256 = "ES256", es384 = "ES384"

    public var isHMAC: Bool { self == .hs256 || self == .hs384 || self == .hs512 }

    public var hmac: HMACAlgorithm? {
        switch self {
        case .hs256: return .sha256
        case .hs384: return .sha384
        case .hs512: return .sha512
        default: return nil
        }
    }

    /// The key family a JWK must have to verify this algorithm.
    public var keyFamily: AsymmetricKey.Family? {
        switch self {
        case .rs256, .rs384, .rs512, .ps256: return .rsa
        case .es256: return .ec(.p256)
        case .es384: return .ec(.p384)
        default: return nil
        }
    }

    fileprivate var digest: OpaquePointer? {
        switch self {
        case .hs256, .rs256, .ps256, .es256: return EVP_sha256()
        case .hs384, .rs384, .es384: return EVP_sha384()
        case .hs512, .rs512: return EVP_sha512()
        }
    }
}

public enum ECCurve: String, Sendable, Hashable {
    case p256 = "P-256", p384 = "P-384"

    /// Bytes per coordinate, and per half of a JWS ECDSA signature.
    var coordinateBytes: Int { self == .p256 ? 32 : 48 }
}

public enum KeyError: Error, Equatable, Sendable, CustomStringConvertible {
    case unsupported(String)
    case malformed(String)
    case weak(String)
    case openssl(String)

    public var description: String {
        switch self {
        case .unsupported(let what): return "unsupported key: \(what)"
        case .malformed(let what): return "malformed key: \(what)"
        case .weak(let what): return "key too weak: \(what)"
        case .openssl(let what): return "OpenSSL: \(what)"
        }
    }
}

/// C copies of the strings and bytes handed to an `OSSL_PARAM_BLD`, freed
/// together once the parameters are built.
private final class ParameterMemory {
    private var blocks: [UnsafeMutableRawPointer] = []

    func string(_ text: String) -> UnsafeMutablePointer<CChar> {
        let copy = strdup(text)!
        self.blocks.append(UnsafeMutableRawPointer(copy))
        return copy
    }

    func bytes(_ data: [UInt8]) -> UnsafeMutableRawPointer {
        let copy = malloc(max(1, data.count))!
        data.withUnsafeBytes { copy.copyMemory(from: $0.baseAddress!, byteCount: data.count) }
        self.blocks.append(copy)
        return copy
    }

    deinit { for block in self.blocks { free(block) } }
}

/// A public (or, for tests and benchmarks, private) RSA or EC key held by
/// OpenSSL. The one owner of its `EVP_PKEY`; no OpenSSL pointer leaves this
/// file. Verification is safe from several threads at once.
public final class AsymmetricKey: @unchecked Sendable {
    public enum Family: Equatable, Sendable {
        case rsa
        case ec(ECCurve)
    }

    /// RSA moduli below this are refused (NIST SP 800-131A).
    public static let minimumRSABits = 2048

    public let family: Family
    private let pkey: OpaquePointer

    private init(pkey: OpaquePointer, family: Family) {
        self.pkey = pkey
        self.family = family
    }

    deinit { EVP_PKEY_free(self.pkey) }

    // MARK: - From JWK (RFC 7517, 7518 §6)

    /// Builds a public key from a JWK object: `kty: RSA` with `n`, `e`, or
    /// `kty: EC` with `crv`, `x`, `y`. Private members are ignored.
    public static func fromJWK(_ jwk: JSONValue) throws(KeyError) -> AsymmetricKey {
        switch jwk["kty"]?.string {
        case "RSA":
            guard let n = jwk["n"]?.string.flatMap({ Base64.decodeURL($0.utf8) }), !n.isEmpty,
                let e = jwk["e"]?.string.flatMap({ Base64.decodeURL($0.utf8) }), !e.isEmpty
            else { throw .malformed("RSA JWK needs base64url n and e") }
            return try self.rsa(modulus: n, exponent: e)
        case "EC":
            guard let name = jwk["crv"]?.string, let curve = ECCurve(rawValue: name) else {
                throw .unsupported("EC curve \(jwk["crv"]?.string ?? "missing") (P-256 and P-384 are supported)")
            }
            guard let x = jwk["x"]?.string.flatMap({ Base64.decodeURL($0.utf8) }),
                let y = jwk["y"]?.string.flatMap({ Base64.decodeURL($0.utf8) }),
                x.count == curve.coordinateBytes, y.count == curve.coordinateBytes
            else { throw .malformed("EC JWK needs base64url x and y of \(curve.coordinateBytes) bytes") }
            return try self.ec(curve: curve, point: [0x04] + x + y)
        case let other:
            throw .unsupported("kty \(other ?? "missing")")
        }
    }

    static func rsa(modulus: [UInt8], exponent: [UInt8]) throws(KeyError) -> AsymmetricKey {
        guard let builder = OSSL_PARAM_BLD_new() else { throw .openssl("OSSL_PARAM_BLD_new") }
        defer { OSSL_PARAM_BLD_free(builder) }
        // The builder keeps the pointers it is given until `to_param`:
        // names and values must outlive that call, so they are C copies
        // owned here rather than Swift's temporary bridged strings.
        let memory = ParameterMemory()
        let n = BN_bin2bn(modulus, Int32(modulus.count), nil)
        let e = BN_bin2bn(exponent, Int32(exponent.count), nil)
        defer {
            BN_free(n)
            BN_free(e)
        }
        guard let n, let e, OSSL_PARAM_BLD_push_BN(builder, memory.string(OSSL_PKEY_PARAM_RSA_N), n) == 1,
            OSSL_PARAM_BLD_push_BN(builder, memory.string(OSSL_PKEY_PARAM_RSA_E), e) == 1
        else { throw .malformed("RSA parameters") }
        let key = try withExtendedLifetime(memory) { () throws(KeyError) in try self.fromParameters(builder, type: "RSA", family: .rsa) }
        let bits = Int(EVP_PKEY_get_bits(key.pkey))
        guard bits >= minimumRSABits else { throw .weak("RSA modulus of \(bits) bits (at least \(minimumRSABits))") }
        return key
    }

    static func ec(curve: ECCurve, point: [UInt8]) throws(KeyError) -> AsymmetricKey {
        guard let builder = OSSL_PARAM_BLD_new() else { throw .openssl("OSSL_PARAM_BLD_new") }
        defer { OSSL_PARAM_BLD_free(builder) }
        let memory = ParameterMemory()
        let pushed = OSSL_PARAM_BLD_push_utf8_string(
                builder, memory.string(OSSL_PKEY_PARAM_GROUP_NAME), memory.string(curve.rawValue), 0) == 1
            && OSSL_PARAM_BLD_push_octet_string(builder, memory.string(OSSL_PKEY_PARAM_PUB_KEY), memory.bytes(point), point.count) == 1
        guard pushed else { throw .malformed("EC parameters") }
        // fromdata checks that the point is on the curve.
        return try withExtendedLifetime(memory) { () throws(KeyError) in try self.fromParameters(builder, type: "EC", family: .ec(curve)) }
    }

    private static func fromParameters(_ builder: OpaquePointer, type: String, family: Family) throws(KeyError) -> AsymmetricKey {
        guard let params = OSSL_PARAM_BLD_to_param(builder) else { throw .openssl("OSSL_PARAM_BLD_to_param") }
        defer { OSSL_PARAM_free(params) }
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, type, nil) else { throw .openssl("EVP_PKEY_CTX_new_from_name") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_fromdata_init(ctx) == 1, EVP_PKEY_fromdata(ctx, &pkey, PCL_EVP_PKEY_PUBLIC_KEY, params) == 1, let pkey else {
            ERR_clear_error()
            throw .malformed("\(type) key rejected by OpenSSL")
        }
        if case .ec = family {
            // fromdata does not always check the point: do it explicitly.
            guard let check = EVP_PKEY_CTX_new_from_pkey(nil, pkey, nil) else {
                EVP_PKEY_free(pkey)
                throw .openssl("EVP_PKEY_CTX_new_from_pkey")
            }
            defer { EVP_PKEY_CTX_free(check) }
            guard EVP_PKEY_public_check(check) == 1 else {
                ERR_clear_error()
                EVP_PKEY_free(pkey)
                throw .malformed("EC point is not on the curve")
            }
        }
        return AsymmetricKey(pkey: pkey, family: family)
    }

    // MARK: - Verification

    /// Checks a JWS signature over `message` (the ASCII of
    /// `header.payload`). ECDSA signatures are the raw r||s of RFC 7518
    /// §3.4, converted to DER here; any other length is simply invalid.
    public func verify(_ algorithm: JWSAlgorithm, message: UnsafeRawBufferPointer, signature: [UInt8]) -> Bool {
        guard let family = algorithm.keyFamily, family == self.family else { return false }
        var der = signature
        if case .ec(let curve) = family {
            guard let converted = Self.rawToDER(signature, half: curve.coordinateBytes) else { return false }
            der = converted
        }
        guard let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        var pctx: OpaquePointer? = nil
        guard EVP_DigestVerifyInit(ctx, &pctx, algorithm.digest, nil, self.pkey) == 1 else {
            ERR_clear_error()
            return false
        }
        if algorithm == .ps256 {
            guard EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1,
                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1
            else {
                ERR_clear_error()
                return false
            }
        }
        let result = der.withUnsafeBufferPointer { sig in
            EVP_DigestVerify(ctx, sig.baseAddress, sig.count, message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count)
        }
        if result != 1 { ERR_clear_error() }
        return result == 1
    }

    private static func rawToDER(_ raw: [UInt8], half: Int) -> [UInt8]? {
        guard raw.count == 2 * half, let sig = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(sig) }
        let r = raw.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32(half), nil) }
        let s = raw.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress! + half, Int32(half), nil) }
        guard let r, let s else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        guard ECDSA_SIG_set0(sig, r, s) == 1 else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        let length = i2d_ECDSA_SIG(sig, nil)
        guard length > 0 else { return nil }
        var out = [UInt8](repeating: 0, count: Int(length))
        _ = out.withUnsafeMutableBufferPointer { buffer in
            var cursor = buffer.baseAddress
            return i2d_ECDSA_SIG(sig, &cursor)
        }
        return out
    }

    // MARK: - Key pairs (tests, benchmarks, the CLI)

    /// A fresh key pair from OpenSSL's generator.
    public static func generate(_ family: Family, rsaBits: Int = 2048) throws(KeyError) -> AsymmetricKey {
        let type: String
        if case .rsa = family { type = "RSA" } else { type = "EC" }
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, type, nil) else { throw .openssl("EVP_PKEY_CTX_new_from_name") }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_keygen_init(ctx) == 1 else { throw .openssl("EVP_PKEY_keygen_init") }
        switch family {
        case .rsa:
            guard EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, Int32(rsaBits)) == 1 else { throw .openssl("rsa keygen bits") }
        case .ec(let curve):
            guard EVP_PKEY_CTX_set_group_name(ctx, curve.rawValue) == 1 else { throw .openssl("ec group") }
        }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_generate(ctx, &pkey) == 1, let pkey else { throw .openssl("EVP_PKEY_generate") }
        return AsymmetricKey(pkey: pkey, family: family)
    }

    /// The public JWK of this key, with `kid`, `alg` and `use: sig`.
    public func publicJWK(kid: String, alg: JWSAlgorithm) -> String {
        var members: [String] = []
        switch self.family {
        case .rsa:
            members.append("\"kty\":\"RSA\"")
            members.append("\"n\":\"\(Base64.encodeURL(self.bignum(OSSL_PKEY_PARAM_RSA_N, width: 0)))\"")
            members.append("\"e\":\"\(Base64.encodeURL(self.bignum(OSSL_PKEY_PARAM_RSA_E, width: 0)))\"")
        case .ec(let curve):
            members.append("\"kty\":\"EC\"")
            members.append("\"crv\":\"\(curve.rawValue)\"")
            members.append("\"x\":\"\(Base64.encodeURL(self.bignum(OSSL_PKEY_PARAM_EC_PUB_X, width: curve.coordinateBytes)))\"")
            members.append("\"y\":\"\(Base64.encodeURL(self.bignum(OSSL_PKEY_PARAM_EC_PUB_Y, width: curve.coordinateBytes)))\"")
        }
        members.append("\"kid\":\(JSON.quoted(kid))")
        members.append("\"alg\":\"\(alg.rawValue)\"")
        members.append("\"use\":\"sig\"")
        return "{" + members.joined(separator: ",") + "}"
    }

    private func bignum(_ name: String, width: Int) -> [UInt8] {
        var bn: OpaquePointer? = nil
        guard EVP_PKEY_get_bn_param(self.pkey, name, &bn) == 1, let bn else { return [] }
        defer { BN_free(bn) }
        let size = max(width, Int((BN_num_bits(bn) + 7) / 8))
        var out = [UInt8](repeating: 0, count: size)
        _ = BN_bn2binpad(bn, &out, Int32(size))
        return out
    }

    /// Signs as a JWS would: PKCS#1 v1.5 or PSS for RSA, raw r||s for EC.
    /// Only for keys made by `generate`.
    public func sign(_ algorithm: JWSAlgorithm, message: [UInt8]) throws(KeyError) -> [UInt8] {
        guard let family = algorithm.keyFamily, family == self.family else { throw .unsupported("\(algorithm) with this key") }
        guard let ctx = EVP_MD_CTX_new() else { throw .openssl("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(ctx) }
        var pctx: OpaquePointer? = nil
        guard EVP_DigestSignInit(ctx, &pctx, algorithm.digest, nil, self.pkey) == 1 else { throw .openssl("EVP_DigestSignInit") }
        if algorithm == .ps256 {
            guard EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1,
                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1
            else { throw .openssl("PSS padding") }
        }
        var length = 0
        guard EVP_DigestSign(ctx, nil, &length, message, message.count) == 1 else { throw .openssl("EVP_DigestSign") }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(ctx, &signature, &length, message, message.count) == 1 else { throw .openssl("EVP_DigestSign") }
        signature.removeLast(signature.count - length)
        guard case .ec(let curve) = family else { return signature }
        // DER -> raw r||s.
        var cursor: UnsafePointer<UInt8>? = nil
        let sig = signature.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            cursor = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let sig else { throw .openssl("d2i_ECDSA_SIG") }
        defer { ECDSA_SIG_free(sig) }
        var raw = [UInt8](repeating: 0, count: 2 * curve.coordinateBytes)
        raw.withUnsafeMutableBufferPointer { buffer in
            _ = BN_bn2binpad(ECDSA_SIG_get0_r(sig), buffer.baseAddress, Int32(curve.coordinateBytes))
            _ = BN_bn2binpad(ECDSA_SIG_get0_s(sig), buffer.baseAddress! + curve.coordinateBytes, Int32(curve.coordinateBytes))
        }
        return raw
    }
}

/// Compact JWS encoding, for tests, benchmarks and operators minting
/// tokens to try a profile (`portcullis jwt sign`). Verification lives in
/// the worker.
public enum JWSMinter {
    /// `base64url(header).base64url(claims).base64url(signature)`.
    public static func token(headerJSON: String, claimsJSON: String, sign: ([UInt8]) throws -> [UInt8]) rethrows -> String {
        let input = Base64.encodeURL(Array(headerJSON.utf8)) + "." + Base64.encodeURL(Array(claimsJSON.utf8))
        return input + "." + Base64.encodeURL(try sign(Array(input.utf8)))
    }

    public static func hmac(_ algorithm: JWSAlgorithm, secret: String, headerJSON: String, claimsJSON: String) -> String {
        token(headerJSON: headerJSON, claimsJSON: claimsJSON) { input in
            input.withUnsafeBytes { Crypto.hmac(algorithm.hmac ?? .sha256, key: Array(secret.utf8), data: $0) }
        }
    }
}
