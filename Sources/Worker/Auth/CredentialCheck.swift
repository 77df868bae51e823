import Shared

/// What check 6 keeps between requests: the verified-token cache and the
/// OIDC keys. Confined to the worker's event loop like the rest of the engine.
final class AuthState {
    let cache: VerifiedTokenCache
    let keys = IssuerKeyStore()

    init(cacheCapacity: Int = 10_000) {
        self.cache = VerifiedTokenCache(capacity: cacheCapacity)
    }
}

/// 6. The credential the profile's auth type asks for.
struct CredentialCheck: DecisionCheck {
    func evaluate(_ context: inout DecisionContext, _ environment: PipelineEnvironment) -> CheckResult {
        guard let profile = context.profile else { return .next }
        switch profile.credential {
        case .none:
            return .next
        case .token(let stored):
            return TokenAuthenticator.verify(authorization: context.request.authorization, stored: stored)
        case .jwt(let rules):
            let clientID = context.request.clientID
            return Self.bearerJWT(&context, environment) { token, now in
                JWTAuthenticator.verify(token, rules: rules, clientID: clientID, now: now)
            }
        case .oidc(let rules):
            return Self.bearerJWT(&context, environment) { token, now in
                OIDCAuthenticator.verify(token, rules: rules, keys: environment.auth.keys, now: now)
            }
        case .mtls(let binding):
            if let error = CertAuthenticator.verify(
                subject: context.request.certSubject, fingerprint: context.request.certFingerprint, binding: binding)
            {
                return .deny(error)
            }
            return .next
        }
    }

    /// The common path of jwt and oidc: Bearer credential, size limit, the
    /// verified-token cache, then the type's own verification.
    private static func bearerJWT(
        _ context: inout DecisionContext, _ environment: PipelineEnvironment,
        verify: (Substring, Int64) -> TokenVerdict
    ) -> CheckResult {
        guard let profile = context.profile else { return .next }
        guard let token = BearerCredential.token(in: context.request.authorization) else {
            return .deny(AuthFailure.missing("Authorization: Bearer <jwt> is required"))
        }
        guard token.utf8.count <= CompactJWS.maxBytes else {
            return .deny(AuthFailure.invalid(.tokenTooLarge, "token exceeds \(CompactJWS.maxBytes) bytes"))
        }
        let now = context.time.unixSeconds
        let auth = environment.auth
        let digest = Crypto.sha256(token)
        let source: String? = if case .oidc(let rules) = profile.credential { rules.source } else { nil }
        let cached = auth.cache.contains(digest, stamp: profile.stamp, now: now) { key in
            // A key the issuer withdrew stops vouching for its tokens.
            source.map { auth.keys.holds(key, source: $0) } ?? false
        }
        if cached { return .next }
        switch verify(token, now) {
        case .verified(let validity, let key):
            auth.cache.insert(digest, stamp: profile.stamp, key: key, validity: validity)
            return .next
        case .failed(let error):
            return .deny(error)
        case .keysNeeded(let error):
            if case .oidc(let rules) = profile.credential { context.keysWanted = rules.source }
            return .deny(error)
        }
    }
}

/// Gateway-issued opaque tokens: the SHA-256 of the presented token against
/// the stored one, compared in constant time. The token itself is never
/// stored, so rotation (a new stored hash) invalidates the old token at once.
enum TokenAuthenticator {
    static func verify(authorization: String, stored: SHA256Digest) -> CheckResult {
        guard let token = BearerCredential.token(in: authorization) else {
            return .deny(GatewayError(401, .unauthorized, .missingCredential, "Authorization: Bearer <token> is required"))
        }
        let presented = Crypto.sha256(token)
        guard presented.constantTimeEquals(stored) else {
            return .deny(GatewayError(401, .invalidToken, .tokenInvalid, "token is not valid for this profile"))
        }
        return .next
    }
}

/// `Authorization: Bearer <credential>` (RFC 6750 §2.1). The scheme is
/// case-insensitive; any other scheme, or an empty credential, counts as
/// no credential (SPEC §9).
enum BearerCredential {
    /// Works on UTF-8 bytes, not Characters: every delimiter here is ASCII,
    /// and grapheme breaking was a visible share of a token decision.
    static func token(in authorization: String) -> Substring? {
        let utf8 = authorization.utf8
        let limit = utf8.endIndex
        var index = utf8.startIndex
        func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
        while index < limit, isBlank(utf8[index]) { utf8.formIndex(after: &index) }
        // Case-insensitive "bearer": `| 0x20` folds ASCII letters.
        for expected in "bearer".utf8 {
            guard index < limit, utf8[index] | 0x20 == expected else { return nil }
            utf8.formIndex(after: &index)
        }
        guard index < limit, isBlank(utf8[index]) else { return nil }
        while index < limit, isBlank(utf8[index]) { utf8.formIndex(after: &index) }
        var end = limit
        while end > index {
            let last = utf8.index(before: end)
            guard isBlank(utf8[last]) else { break }
            end = last
        }
        return index < end ? authorization[index..<end] : nil
    }
}

extension Crypto {
    static func sha256(_ text: Substring) -> SHA256Digest {
        var copy = text
        return copy.withUTF8 { sha256(UnsafeRawBufferPointer($0)) }
    }
}
