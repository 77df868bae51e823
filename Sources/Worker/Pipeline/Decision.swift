import Shared

/// What the pipeline concluded. Outcomes stay apart: a denial is an answer
/// about the request; `unavailable` means the worker could not decide and
/// is never turned into an allow.
enum Decision: Equatable {
    case allowed(Allowance)
    case denied(GatewayError)
    case unavailable(GatewayError)
}

struct Allowance: Equatable {
    let collectionID: String
    let stripPrefixBytes: Int
}

/// Per-request state the checks fill in as they pass.
struct DecisionContext {
    let request: DecisionRequest
    let time: DecisionTime
    var client: CompiledClient?
    var profile: CompiledProfile?
    var route: RouteTable.Match?
    var limits: LimitVerdict?
    /// Set when check 6 failed for want of fresh OIDC keys from this
    /// source and a fetch is allowed: the caller may wait and decide again.
    var keysWanted: String?

    init(request: DecisionRequest, time: DecisionTime) {
        self.request = request
        self.time = time
    }
}

/// What every check sees besides the request: the model, the limiter and
/// the auth state (token cache, OIDC keys).
struct PipelineEnvironment {
    let model: WorkerModel
    let limiter: PolicyLimiter
    let auth: AuthState
}

enum CheckResult {
    case next
    case deny(GatewayError)
}

/// One step of SPEC §2. Checks run in order; the first denial answers.
protocol DecisionCheck: Sendable {
    func evaluate(_ context: inout DecisionContext, _ environment: PipelineEnvironment) -> CheckResult
}
