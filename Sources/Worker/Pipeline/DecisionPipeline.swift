import Shared

/// The worker's decision: the checks of SPEC §2 in their fixed order over a
/// per-request context. Plain synchronous code with the clock passed in, so
/// tests drive it directly, without sockets.
struct DecisionPipeline {
    static let checks: [any DecisionCheck] = [
        IdentityCheck(),  // 1
        LookupCheck(),  // 2
        OwnershipCheck(),  // 3
        StatusCheck(),  // 4
        SourceIPCheck(),  // 5
        CredentialCheck(),  // 6
        MethodCheck(),  // 7
        RouteCheck(),  // 8
        LimitsCheck(),  // 9
    ]

    let environment: PipelineEnvironment

    func decide(_ request: DecisionRequest, at time: DecisionTime) -> (Decision, DecisionContext) {
        var context = DecisionContext(request: request, time: time)
        for check in Self.checks {
            if case .deny(let error) = check.evaluate(&context, self.environment) {
                return (.denied(error), context)
            }
        }
        guard let route = context.route else {
            // RouteCheck always sets it or denies; reaching here is a bug, and
            // the safe answer is no.
            return (.unavailable(GatewayError(500, .internalError, .noRoute, "route missing after routing")), context)
        }
        return (
            .allowed(Allowance(collectionID: route.collectionID, stripPrefixBytes: route.stripPrefix ? route.prefixBytes : 0)),
            context
        )
    }
}
