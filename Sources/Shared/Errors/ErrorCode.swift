/// The `error` values of SPEC §2 and the router's own failures. Clients and
/// their tests match on these strings; never rename one.
public enum ErrorCode: String, Sendable, CaseIterable {
    case unauthorized
    case forbidden
    case invalidToken = "invalid_token"
    case ipNotAllowed = "ip_not_allowed"
    case methodNotAllowed = "method_not_allowed"
    case notFound = "not_found"
    case rateLimitExceeded = "rate_limit_exceeded"
    case quotaExceeded = "quota_exceeded"
    case quotaUnavailable = "quota_unavailable"
    case badGateway = "bad_gateway"
    case upstreamTimeout = "upstream_timeout"
    case workerUnavailable = "worker_unavailable"
    case credentialUnavailable = "credential_unavailable"
    /// An oidc profile's signing keys could not be fetched yet: the gateway
    /// cannot tell a good token from a bad one, so it neither allows nor
    /// blames the token.
    case authUnavailable = "auth_unavailable"
    case badRequest = "bad_request"
    case requestTimeout = "request_timeout"
    case payloadTooLarge = "payload_too_large"
    case headersTooLarge = "request_header_fields_too_large"
    case internalError = "internal_error"
}

/// Decision-log reason codes: why a request got the answer it got. Finer
/// than `ErrorCode` (an auditor wants `inactive_profile`, not `forbidden`).
public enum ReasonCode: String, Sendable, CaseIterable {
    case allowed
    case missingIdentity = "missing_identity"
    case unknownClient = "unknown_client"
    case unknownProfile = "unknown_profile"
    case clientProfileMismatch = "client_profile_mismatch"
    case inactiveClient = "inactive_client"
    case inactiveProfile = "inactive_profile"
    case ipNotAllowed = "ip_not_allowed"
    case missingCredential = "missing_credential"
    case tokenInvalid = "token_invalid"
    // jwt and oidc (SPEC §3, §9)
    case tokenMalformed = "token_malformed"
    case tokenTooLarge = "token_too_large"
    case algorithmNotAllowed = "alg_not_allowed"
    case forbiddenHeader = "forbidden_jose_header"
    case badSignature = "bad_signature"
    case jwtExpired = "jwt_expired"
    case jwtNotYetValid = "jwt_not_yet_valid"
    case iatInFuture = "iat_in_future"
    case lifetimeTooLong = "lifetime_too_long"
    case missingClaim = "missing_claim"
    case claimMismatch = "claim_mismatch"
    case subMismatch = "sub_mismatch"
    case wrongIssuer = "wrong_issuer"
    case wrongAudience = "wrong_audience"
    case unknownKid = "unknown_kid"
    case missingRole = "missing_role"
    case keysUnavailable = "keys_unavailable"
    // mtls
    case certMismatch = "cert_mismatch"
    case methodNotAllowed = "method_not_allowed"
    case noRoute = "no_route"
    case collectionDenied = "collection_denied"
    case rateLimit = "rate_limit"
    case quota = "quota"
    /// This holder's share of a quota is spent and its claim for more has
    /// not come back from Redis yet (only near the end of a budget).
    case quotaPending = "quota_pending"
    /// Redis is down and the policy says `fail_closed`.
    case quotaUnavailable = "quota_unavailable"
    case noConfig = "no_config"
    case workerUnavailable = "worker_unavailable"
    case upstreamRefused = "upstream_refused"
    case upstreamReset = "upstream_reset"
    case upstreamMalformed = "upstream_malformed"
    case upstreamTimeout = "upstream_timeout"
    case unknownCollection = "unknown_collection"
    case malformedRequest = "malformed_request"
    case headersTooLarge = "headers_too_large"
    case bodyTooLarge = "body_too_large"
    case headerTimeout = "header_timeout"
    case credentialUnavailable = "credential_unavailable"
}
