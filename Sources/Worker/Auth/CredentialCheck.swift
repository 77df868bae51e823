import Shared

/// 6. The credential the profile's auth type asks for.
struct CredentialCheck: DecisionCheck {
    func evaluate(_ context: inout DecisionContext, _ environment: PipelineEnvironment) -> CheckResult {
        guard let profile = context.profile else { return .next }
        switch profile.credential {
        case .none:
            return .next
        case .token(let stored):
            return TokenAuthenticator.verify(authorization: context.request.authorization, stored: stored)
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
    static func token(in authorization: String) -> Substring? {
        let value = authorization.trimmingPrefixWhitespace()
        let utf8 = value.utf8
        guard utf8.count > 7 else { return nil }
        // Case-insensitive "bearer" on bytes: `| 0x20` folds ASCII letters.
        guard value.utf8.prefix(6).elementsEqual("bearer".utf8, by: { $0 | 0x20 == $1 }) else { return nil }
        let afterScheme = value.dropFirst(6)
        guard let first = afterScheme.first, first == " " || first == "\t" else { return nil }
        let token = afterScheme.drop(while: { $0 == " " || $0 == "\t" })
        var end = token.endIndex
        while end > token.startIndex, token[token.index(before: end)] == " " || token[token.index(before: end)] == "\t" {
            end = token.index(before: end)
        }
        let trimmed = token[..<end]
        return trimmed.isEmpty ? nil : trimmed
    }
}

extension String {
    fileprivate func trimmingPrefixWhitespace() -> Substring {
        self.drop(while: { $0 == " " || $0 == "\t" })
    }
}

extension Crypto {
    static func sha256(_ text: Substring) -> SHA256Digest {
        var copy = text
        return copy.withUTF8 { sha256(UnsafeRawBufferPointer($0)) }
    }
}
