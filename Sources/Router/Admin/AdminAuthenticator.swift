import Dispatch
import Foundation
import NIOConcurrencyHelpers
import Shared

/// Who may use the management API: OIDC bearer tokens from
/// `server.admin.issuer`, verified with the issuer's JWKS (the same fetch
/// and verify code as the oidc auth type), roles from `roles_claim`.
final class AdminAuthenticator: @unchecked Sendable {
    enum Role: String, CaseIterable, Sendable {
        case viewer, modifier, auditor, admin
    }

    struct Principal: Sendable {
        let id: String
        /// "service" for a client-credentials token, else "user".
        let type: String
        let roles: Set<Role>
    }

    struct Refusal: Error {
        /// 401 or 503.
        let status: Int
        let error: String
        let reason: String
        let message: String
    }

    let config: AdminConfig
    let rules: OIDCRules
    private let keys = NIOLockedValueBox(IssuerKeyStore())
    /// Counts key messages for our source, so a waiter can tell that the
    /// fetch it asked for has been answered (success or failure).
    private let answers = NIOLockedValueBox(0)
    private let requestRefresh: @Sendable (String) -> Void

    init(config: AdminConfig, requestRefresh: @escaping @Sendable (String) -> Void) {
        self.config = config
        self.rules = OIDCRules(
            issuer: config.issuer, audience: config.audience, algorithms: [.rs256, .rs384, .rs512, .ps256, .es256, .es384], leeway: 30,
            requiredClaims: [], rolesClaim: config.rolesClaim, requiredRoles: [],
            source: OIDCKeySource.id(issuer: config.issuer, jwksURI: config.jwksURI))
        self.requestRefresh = requestRefresh
    }

    /// Keys fetched by the router's key service; other sources are ignored.
    func accept(_ message: KeySetMessage) {
        guard message.source == self.rules.source else { return }
        self.keys.withLockedValue { _ = $0.apply(message) }
        self.answers.withLockedValue { $0 += 1 }
    }

    /// Blocks (on a pool thread) up to 3 s when the keys must be fetched
    /// first: an unknown `kid` right after the IdP rotated its keys.
    func authenticate(authorization: String?) -> Result<Principal, Refusal> {
        guard let authorization, authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else {
            return .failure(Refusal(status: 401, error: "unauthorized", reason: "missing_credential", message: "a bearer token is required"))
        }
        let token = authorization.dropFirst(7).trimmingASCIIWhitespace()
        for attempt in 0..<2 {
            let now = Int64(Date().timeIntervalSince1970)
            let verdict = self.keys.withLockedValue { OIDCAuthenticator.verify(token, rules: self.rules, keys: $0, now: now) }
            switch verdict {
            case .verified:
                return self.principal(token)
            case .failed(let error):
                return .failure(Self.refusal(error))
            case .keysNeeded(let error):
                guard attempt == 0 else { return .failure(Self.refusal(error)) }
                let before = self.answers.withLockedValue { $0 }
                self.requestRefresh(self.rules.source)
                let deadline = Date().addingTimeInterval(3)
                while Date() < deadline, self.answers.withLockedValue({ $0 }) == before {
                    usleep(20_000)
                }
            }
        }
        return .failure(Refusal(status: 401, error: "invalid_token", reason: "unknown_kid", message: "no signing key matches the token"))
    }

    private func principal(_ token: Substring) -> Result<Principal, Refusal> {
        guard case .success(let jws) = CompactJWS.parse(token) else {
            return .failure(Refusal(status: 401, error: "invalid_token", reason: "token_malformed", message: "token is malformed"))
        }
        let claims = JSONValue.object(jws.claims)
        let held = OIDCAuthenticator.roles(claims.value(atPath: self.config.rolesClaim))
        let roles = Set(held.compactMap(Role.init(rawValue:)))
        let subject = jws.claims["sub"]?.string ?? jws.claims["client_id"]?.string ?? "unknown"
        // Keycloak and most IdPs put the OAuth client on client-credentials
        // tokens; a person's token names a user instead.
        let isService = jws.claims["client_id"] != nil || jws.claims["clientId"] != nil
            || (jws.claims["preferred_username"]?.string?.hasPrefix("service-account-") ?? false)
        return .success(Principal(id: subject, type: isService ? "service" : "user", roles: roles))
    }

    private static func refusal(_ error: GatewayError) -> Refusal {
        Refusal(status: error.status, error: error.code.rawValue, reason: error.reason, message: error.message)
    }
}
