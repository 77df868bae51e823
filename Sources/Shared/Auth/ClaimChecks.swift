/// Registered-claim checks shared by jwt and oidc (RFC 7519 §4.1), run only
/// after the signature verified: an unauthenticated token learns nothing
/// about which of its claims we disliked.
public enum ClaimChecks {
    /// When a verified token may be accepted: [from, until) in Unix seconds,
    /// leeway included. The verified-token cache keeps this window.
    public struct Validity: Equatable, Sendable {
        public let from: Int64
        public let until: Int64

        public init(from: Int64, until: Int64) {
            self.from = from
            self.until = until
        }
    }

    public static func times(
        _ claims: [String: JSONValue], now: Int64, leeway: Int64, maxTTL: Int64?
    ) -> Result<Validity, GatewayError> {
        guard let expClaim = claims["exp"] else { return .failure(AuthFailure.invalid(.missingClaim, "token has no exp claim")) }
        guard let exp = expClaim.integer else { return .failure(AuthFailure.malformed("exp is not a NumericDate")) }
        var from = Int64.min
        if let nbfClaim = claims["nbf"] {
            guard let nbf = nbfClaim.integer else { return .failure(AuthFailure.malformed("nbf is not a NumericDate")) }
            from = max(from, nbf &- leeway)
        }
        var iat: Int64? = nil
        if let iatClaim = claims["iat"] {
            guard let value = iatClaim.integer else { return .failure(AuthFailure.malformed("iat is not a NumericDate")) }
            iat = value
            from = max(from, value &- leeway)
        }
        let until = exp &+ leeway
        if now >= until { return .failure(AuthFailure.invalid(.jwtExpired, "token has expired")) }
        if now < from {
            if let iat, now < iat &- leeway { return .failure(AuthFailure.invalid(.iatInFuture, "token was issued in the future")) }
            return .failure(AuthFailure.invalid(.jwtNotYetValid, "token is not valid yet"))
        }
        if let maxTTL {
            guard let iat else { return .failure(AuthFailure.invalid(.missingClaim, "token has no iat claim (required with max_ttl_s)")) }
            if exp &- iat > maxTTL {
                return .failure(AuthFailure.invalid(.lifetimeTooLong, "token lifetime exceeds \(maxTTL) s"))
            }
        }
        return .success(Validity(from: from, until: until))
    }

    /// Every configured claim present with exactly the configured value.
    public static func required(_ claims: [String: JSONValue], _ required: [(name: String, value: String)]) -> GatewayError? {
        for (name, value) in required {
            guard let claim = claims[name] else { return AuthFailure.invalid(.missingClaim, "token has no \(name) claim") }
            if !claim.matches(value) { return AuthFailure.invalid(.claimMismatch, "claim \(name) does not have the required value") }
        }
        return nil
    }
}
