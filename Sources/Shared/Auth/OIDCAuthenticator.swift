/// What verifying a bearer JWT concluded.
public enum TokenVerdict: Sendable {
    /// Valid in this window; `key` is the IdP key that verified it (oidc).
    case verified(ClaimChecks.Validity, key: AsymmetricKey?)
    case failed(GatewayError)
    /// The keys may be stale (unknown `kid`, or none yet) and a fetch is
    /// allowed: the caller may wait for fresh keys and decide again. The
    /// error is the answer if it cannot wait.
    case keysNeeded(GatewayError)
}

/// An oidc profile, compiled (SPEC §9 keys).
public struct OIDCRules: Sendable {
    public let issuer: String
    public let audience: String
    public let algorithms: Set<JWSAlgorithm>
    public let leeway: Int64
    public let requiredClaims: [(name: String, value: String)]
    public let rolesClaim: String
    public let requiredRoles: [String]
    /// Where the keys come from: `OIDCKeySource.id`.
    public let source: String

    public init(
        issuer: String, audience: String, algorithms: Set<JWSAlgorithm>, leeway: Int64, requiredClaims: [(name: String, value: String)],
        rolesClaim: String, requiredRoles: [String], source: String
    ) {
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms
        self.leeway = leeway
        self.requiredClaims = requiredClaims
        self.rolesClaim = rolesClaim
        self.requiredRoles = requiredRoles
        self.source = source
    }
}

/// ID tokens signed by an external IdP (SPEC §3 `oidc`), verified with the
/// issuer's JWKS keys that the router fetched.
public enum OIDCAuthenticator {
    public static func verify(_ token: Substring, rules: OIDCRules, keys: IssuerKeyStore, now: Int64) -> TokenVerdict {
        let jws: CompactJWS
        switch CompactJWS.parse(token) {
        case .success(let parsed): jws = parsed
        case .failure(let error): return .failed(error)
        }
        // Refuses `none`, HS* (the key-confusion attack: the IdP's public
        // key used as an HMAC secret) and anything not listed.
        guard rules.algorithms.contains(jws.algorithm), !jws.algorithm.isHMAC else {
            return .failed(AuthFailure.invalid(.algorithmNotAllowed, "algorithm \(jws.algorithm.rawValue) is not allowed for this profile"))
        }
        // Checked before any key lookup, on the unverified claim: a token
        // from another IdP is refused at once and never makes us refetch
        // our issuer's keys. Nothing is trusted from it either way.
        guard jws.claims["iss"]?.string == rules.issuer else {
            return .failed(AuthFailure.invalid(.wrongIssuer, "token was not issued by this profile's issuer"))
        }
        let refreshAllowed = keys.refreshAllowed(rules.source, nowUnixSeconds: now)
        guard keys.hasKeys(rules.source) else {
            let error = GatewayError(
                503, .authUnavailable, .keysUnavailable, "the issuer's signing keys are not available yet", retryAfterSeconds: 5)
            return refreshAllowed ? .keysNeeded(error) : .failed(error)
        }
        let candidates = keys.candidates(rules.source, algorithm: jws.algorithm, kid: jws.kid)
        guard !candidates.isEmpty else {
            let error = AuthFailure.invalid(.unknownKid, "no signing key of the issuer matches the token's kid")
            return refreshAllowed ? .keysNeeded(error) : .failed(error)
        }
        let verifier = jws.signingInput.withUnsafeBytes { message in
            candidates.first { $0.verify(jws.algorithm, message: message, signature: jws.signature) }
        }
        guard let verifier else { return .failed(AuthFailure.invalid(.badSignature, "signature does not verify")) }

        let validity: ClaimChecks.Validity
        switch ClaimChecks.times(jws.claims, now: now, leeway: rules.leeway, maxTTL: nil) {
        case .success(let window): validity = window
        case .failure(let error): return .failed(error)
        }
        guard Self.audience(jws.claims["aud"], contains: rules.audience) else {
            return .failed(AuthFailure.invalid(.wrongAudience, "token is not meant for this audience"))
        }
        if let error = ClaimChecks.required(jws.claims, rules.requiredClaims) { return .failed(error) }
        if !rules.requiredRoles.isEmpty {
            let held = Self.roles(JSONValue.object(jws.claims).value(atPath: rules.rolesClaim))
            if let missing = rules.requiredRoles.first(where: { !held.contains($0) }) {
                return .failed(AuthFailure.forbidden(.missingRole, "token lacks the role \(missing)"))
            }
        }
        return .verified(validity, key: verifier)
    }

    /// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
    public static func audience(_ claim: JSONValue?, contains audience: String) -> Bool {
        switch claim {
        case .string(let value): return value == audience
        case .array(let values): return values.contains { $0.string == audience }
        default: return false
        }
    }

    /// Roles as an array of strings, or one space-separated string (the
    /// `scope` style some IdPs use).
    public static func roles(_ claim: JSONValue?) -> Set<String> {
        switch claim {
        case .array(let values): return Set(values.compactMap(\.string))
        case .string(let value): return Set(value.split(separator: " ").map(String.init))
        default: return []
        }
    }
}
