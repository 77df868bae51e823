import Shared

/// A jwt profile, compiled: the HMAC secret (resolved from `enc:v1:` or
/// `$ENV` when the snapshot was applied, then keyed per algorithm) and the
/// claim rules of SPEC §9.
struct JWTRules {
    /// One prepared key per allowed HS* algorithm (at most three).
    let keys: [HMACKey]
    let algorithms: Set<JWSAlgorithm>
    let leeway: Int64
    let maxTTL: Int64?
    let requireSubMatch: Bool
    let requiredClaims: [(name: String, value: String)]
}

/// Client-signed HMAC tokens (SPEC §3 `jwt`). Order: parse strictly, check
/// the algorithm against the profile's list, verify the MAC in constant
/// time, then the claims.
enum JWTAuthenticator {
    static func verify(
        _ token: Substring, rules: JWTRules, clientID: String, now: Int64
    ) -> TokenVerdict {
        let jws: CompactJWS
        switch CompactJWS.parse(token) {
        case .success(let parsed): jws = parsed
        case .failure(let error): return .failed(error)
        }
        guard rules.algorithms.contains(jws.algorithm), let hmac = jws.algorithm.hmac,
            let key = rules.keys.first(where: { $0.algorithm == hmac })
        else {
            return .failed(AuthFailure.invalid(.algorithmNotAllowed, "algorithm \(jws.algorithm.rawValue) is not allowed for this profile"))
        }
        if let typ = jws.header["typ"], typ.string?.uppercased() != "JWT" {
            return .failed(AuthFailure.malformed("typ must be JWT"))
        }
        let mac = jws.signingInput.withUnsafeBytes { key.mac($0) }
        guard Crypto.constantTimeEquals(mac, jws.signature) else {
            return .failed(AuthFailure.invalid(.badSignature, "signature does not verify"))
        }
        let validity: ClaimChecks.Validity
        switch ClaimChecks.times(jws.claims, now: now, leeway: rules.leeway, maxTTL: rules.maxTTL) {
        case .success(let window): validity = window
        case .failure(let error): return .failed(error)
        }
        if rules.requireSubMatch {
            guard let sub = jws.claims["sub"] else { return .failed(AuthFailure.invalid(.missingClaim, "token has no sub claim")) }
            guard sub.string == clientID else {
                return .failed(AuthFailure.invalid(.subMismatch, "sub does not match X-Client-ID"))
            }
        }
        if let error = ClaimChecks.required(jws.claims, rules.requiredClaims) { return .failed(error) }
        return .verified(validity, key: nil)
    }
}
