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
        let presented = BearerCredential.withToken(in: authorization) { Crypto.sha256($0) }
        guard let presented else {
            return .deny(GatewayError(401, .unauthorized, .missingCredential, "Authorization: Bearer <token> is required"))
        }
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
    static func token(in authorization: String) -> Substring? {
        guard let range = self.tokenBytes(in: authorization) else { return nil }
        let utf8 = authorization.utf8
        let start = utf8.index(utf8.startIndex, offsetBy: range.lowerBound)
        let end = utf8.index(utf8.startIndex, offsetBy: range.upperBound)
        return authorization[start..<end]
    }

    /// The credential's bytes, without making a Substring (opaque tokens
    /// only need them hashed).
    static func withToken<R>(in authorization: String, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        var authorization = authorization
        return authorization.withUTF8 { utf8 -> R? in
            guard let range = self.tokenRange(UnsafeRawBufferPointer(utf8)) else { return nil }
            return body(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[range]))
        }
    }

    private static func tokenBytes(in authorization: String) -> Range<Int>? {
        var authorization = authorization
        return authorization.withUTF8 { self.tokenRange(UnsafeRawBufferPointer($0)) }
    }

    /// Byte offsets of the credential: every delimiter is ASCII, so this
    /// works on UTF-8 bytes, not Characters (grapheme breaking was a
    /// visible share of a token decision).
    static func tokenRange(_ bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
        let limit = bytes.count
        var index = 0
        while index < limit, isBlank(bytes[index]) { index += 1 }
        // Case-insensitive "bearer": `| 0x20` folds ASCII letters.
        let scheme: StaticString = "bearer"
        guard limit - index > scheme.utf8CodeUnitCount else { return nil }
        for offset in 0..<scheme.utf8CodeUnitCount where bytes[index + offset] | 0x20 != scheme.utf8Start[offset] { return nil }
        index += scheme.utf8CodeUnitCount
        guard isBlank(bytes[index]) else { return nil }
        while index < limit, isBlank(bytes[index]) { index += 1 }
        var end = limit
        while end > index, isBlank(bytes[end - 1]) { end -= 1 }
        return index < end ? index..<end : nil
    }
}

extension Crypto {
    static func sha256(_ text: Substring) -> SHA256Digest {
        var copy = text
        return copy.withUTF8 { sha256(UnsafeRawBufferPointer($0)) }
    }
}
