import Shared

/// 1. Both identity headers present.
struct IdentityCheck: DecisionCheck {
    func evaluate(_ context: inout DecisionContext, _ environment: PipelineEnvironment) -> CheckResult {
        if context.request.clientID.isEmpty || context.request.profileID.isEmpty {
            return .deny(GatewayError(401, .unauthorized, .missingIdentity, "X-Client-ID and X-Profile-ID headers are required"))
        }
        return .next
    }
}

/// 2. Client and profile exist. Profile ids are unique across all clients,
/// and each worker knows the owner of every profile, so "unknown" here
/// really means unknown anywhere.
struct LookupCheck: DecisionCheck {
    func evaluate(_ context: inout DecisionContext, _ environment: PipelineEnvironment) -> CheckResult {
        guard let client = environment.model.clients[context.request.clientID] else {
            return .deny(GatewayError(401, .unauthorized, .unknownClient, "unknown client"))
        }
        context.client = client
        // The client's own profiles first (one or two, no hashing); the
        // model-wide table tells a mismatch from an unknown profile.
        if let profile = client.profile(context.request.profileID) {
            context.profile = profile
        } else if let profile = environment.model.profiles[context.request.profileID] {
            context.profile = profile
        } else if environment.model.foreignProfiles[context.request.profileID] == nil {
            return .deny(GatewayError(401, .unauthorized, .unknownProfile, "unknown profile"))
        }
        return .next
    }
}

/// 3. The profile belongs to the client.
struct OwnershipCheck: DecisionCheck {
    func evaluate(_ context: inout DecisionContext, _ environment: PipelineEnvironment) -> CheckResult {
        guard let profile = context.profile, profile.clientID == context.request.clientID else {
            context.profile = nil
            return .deny(GatewayError(403, .forbidden, .clientProfileMismatch, "profile does not belong to this client"))
        }
        return .next
    }
}

/// 4. Client and profile active.
struct StatusCheck: DecisionCheck {
    func evaluate(_ context: inout DecisionContext, _ environment: PipelineEnvironment) -> CheckResult {
        if context.client?.active != true {
            return .deny(GatewayError(403, .forbidden, .inactiveClient, "client is inactive"))
        }
        if context.profile?.active != true {
            return .deny(GatewayError(403, .forbidden, .inactiveProfile, "profile is inactive"))
        }
        return .next
    }
}

/// 5. Source address in the profile's allowlist, when it has one. The
/// router already resolved X-Forwarded-For against trusted proxies; an
/// unknown address matches no allowlist.
struct SourceIPCheck: DecisionCheck {
    func evaluate(_ context: inout DecisionContext, _ environment: PipelineEnvironment) -> CheckResult {
        guard let allowlist = context.profile?.allowedIPs else { return .next }
        if let address = context.request.sourceIP, allowlist.contains(address) { return .next }
        return .deny(GatewayError(403, .ipNotAllowed, .ipNotAllowed, "source address is not in the profile's allowlist"))
    }
}

/// 7. Method allowed by the profile; 405 lists exactly its methods.
struct MethodCheck: DecisionCheck {
    func evaluate(_ context: inout DecisionContext, _ environment: PipelineEnvironment) -> CheckResult {
        guard let profile = context.profile, let methods = profile.allowedMethods else { return .next }
        if methods.contains(context.request.method) { return .next }
        var error = GatewayError(405, .methodNotAllowed, .methodNotAllowed, "method \(context.request.method) is not allowed for this profile")
        error.allow = profile.allowHeader
        return .deny(error)
    }
}

/// 8. A route owns the path, and the client may use its collection.
struct RouteCheck: DecisionCheck {
    func evaluate(_ context: inout DecisionContext, _ environment: PipelineEnvironment) -> CheckResult {
        guard let match = environment.model.routes.match(context.request.path) else {
            return .deny(GatewayError(404, .notFound, .noRoute, "no route for this path"))
        }
        context.route = match
        guard context.client?.mayUse(match.collectionID) == true else {
            return .deny(GatewayError(403, .forbidden, .collectionDenied, "client may not use this API"))
        }
        return .next
    }
}

/// 9. Rate limits, then quotas.
struct LimitsCheck: DecisionCheck {
    func evaluate(_ context: inout DecisionContext, _ environment: PipelineEnvironment) -> CheckResult {
        guard let client = context.client, let policy = client.policy, !policy.isEmpty else { return .next }
        let verdict = environment.limiter.check(client: client, policy: policy, time: context.time)
        context.limits = verdict
        switch verdict.outcome {
        case .allowed:
            return .next
        case .rateLimited(let retryAfter):
            return .deny(GatewayError(429, .rateLimitExceeded, .rateLimit, "rate limit exceeded", retryAfterSeconds: retryAfter))
        case .quotaExceeded(let retryAfter):
            return .deny(GatewayError(429, .quotaExceeded, .quota, "quota exceeded", retryAfterSeconds: retryAfter))
        case .quotaPending:
            return .deny(
                GatewayError(429, .quotaExceeded, .quotaPending, "quota nearly spent; retry shortly", retryAfterSeconds: 1))
        case .quotaUnavailable:
            return .deny(
                GatewayError(503, .quotaUnavailable, .quotaUnavailable, "quota store unavailable", retryAfterSeconds: 1))
        }
    }
}
