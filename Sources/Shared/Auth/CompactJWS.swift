/// A JWS in compact serialization (RFC 7515 §7.1), parsed strictly and not
/// yet verified: exactly three base64url segments without padding, a
/// header and a payload that are JSON objects, a known algorithm, no
/// header that would make us fetch or trust a key the token brings along.
/// Lives in Shared so the fuzz harnesses (fuzz/) can reach it.
public struct CompactJWS: Sendable {
    /// Tokens longer than this are refused before any decoding (SPEC: 8 KiB).
    public static let maxBytes = 8192

    public let algorithm: JWSAlgorithm
    public let header: [String: JSONValue]
    public let claims: [String: JSONValue]
    /// `header.payload`: the bytes the signature covers.
    public let signingInput: [UInt8]
    public let signature: [UInt8]

    public var kid: String? { self.header["kid"]?.string }

    /// Header parameters that point at or carry keys. Honouring them would
    /// let the token choose its own verification key, so their presence
    /// alone rejects the token (`jku`/`x5u` are never fetched).
    public static let forbiddenHeaders = ["jku", "x5u", "jwk", "x5c"]

    public static func parse(_ token: Substring) -> Result<CompactJWS, GatewayError> {
        var copy = token
        return copy.withUTF8 { bytes in self.parse(bytes) }
    }

    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<CompactJWS, GatewayError> {
        guard bytes.count <= self.maxBytes else {
            return .failure(AuthFailure.invalid(.tokenTooLarge, "token exceeds \(self.maxBytes) bytes"))
        }
        var dots: [Int] = []
        for (offset, byte) in bytes.enumerated() where byte == UInt8(ascii: ".") {
            dots.append(offset)
            if dots.count > 2 { break }
        }
        guard dots.count == 2 else { return .failure(AuthFailure.malformed("a JWT has exactly three segments")) }
        let headerPart = UnsafeBufferPointer(rebasing: bytes[0..<dots[0]])
        let payloadPart = UnsafeBufferPointer(rebasing: bytes[(dots[0] + 1)..<dots[1]])
        let signaturePart = UnsafeBufferPointer(rebasing: bytes[(dots[1] + 1)...])
        guard !headerPart.isEmpty, !payloadPart.isEmpty, !signaturePart.isEmpty,
            let headerBytes = Base64.decodeURL(headerPart),
            let payloadBytes = Base64.decodeURL(payloadPart),
            let signature = Base64.decodeURL(signaturePart)
        else { return .failure(AuthFailure.malformed("segments must be unpadded base64url")) }
        guard let header = (try? JSONValue.parse(headerBytes))?.object else {
            return .failure(AuthFailure.malformed("header is not a JSON object"))
        }
        guard let claims = (try? JSONValue.parse(payloadBytes))?.object else {
            return .failure(AuthFailure.malformed("payload is not a JSON object"))
        }
        guard let name = header["alg"]?.string else { return .failure(AuthFailure.malformed("header has no alg")) }
        // "none", and anything we do not implement, is simply not allowed.
        guard let algorithm = JWSAlgorithm(rawValue: name) else {
            return .failure(AuthFailure.invalid(.algorithmNotAllowed, "algorithm \(name.prefix(16)) is not allowed"))
        }
        for forbidden in self.forbiddenHeaders where header[forbidden] != nil {
            return .failure(AuthFailure.invalid(.forbiddenHeader, "header parameter \(forbidden) is not accepted"))
        }
        // RFC 7515 §4.1.11: extensions we do not understand must be refused.
        if header["crit"] != nil {
            return .failure(AuthFailure.invalid(.forbiddenHeader, "header parameter crit is not supported"))
        }
        return .success(
            CompactJWS(
                algorithm: algorithm, header: header, claims: claims,
                signingInput: Array(UnsafeBufferPointer(rebasing: bytes[0..<dots[1]])), signature: signature))
    }
}

/// The 401s and 403s of check 6, built in one place so every auth type
/// words them alike.
public enum AuthFailure {
    public static func missing(_ what: String) -> GatewayError {
        GatewayError(401, .unauthorized, .missingCredential, what)
    }

    public static func malformed(_ why: String) -> GatewayError {
        GatewayError(401, .invalidToken, .tokenMalformed, "token is malformed: \(why)")
    }

    public static func invalid(_ reason: ReasonCode, _ message: String) -> GatewayError {
        GatewayError(401, .invalidToken, reason, message)
    }

    public static func forbidden(_ reason: ReasonCode, _ message: String) -> GatewayError {
        GatewayError(403, .forbidden, reason, message)
    }
}
