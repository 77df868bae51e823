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
