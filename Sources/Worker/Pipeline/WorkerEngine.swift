import Foundation
import Shared

/// The worker's state: the current model and every client's limits. All of
/// it is confined to the worker's one event loop: one writer, no locks, and
/// limits stay exact.
final class WorkerEngine {
    let workerIndex: Int
    private(set) var model: WorkerModel?
    let limiter: PolicyLimiter
    let auth: AuthState
    private let clock: any DecisionClock
    /// Resolves jwt secrets: `ENCRYPTION_KEY` and `$VAR` references.
    private let environment: [String: String]

    init(
        workerIndex: Int, clock: any DecisionClock = SystemDecisionClock(), ledger: QuotaLedger = QuotaLedger(shared: false),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.workerIndex = workerIndex
        self.environment = environment
        self.clock = clock
        self.limiter = PolicyLimiter(ledger: ledger)
        self.auth = AuthState()
    }

    /// What `decide` concluded: an answer now, or "wait for this key source"
    /// (only when the caller said it can wait).
    enum Answer {
        case response(DecisionResponse)
        case waitForKeys(source: String)
    }

    /// Puts a new snapshot in force. Limit state survives for clients whose
    /// policy kept its shape; a model that fails to compile changes nothing.
    func apply(_ snapshot: WorkerSnapshot) throws(ConfigError) {
        let model = try WorkerModel(snapshot: snapshot, environment: self.environment)
        self.keepLimits(under: model)
        // The verified-token cache is kept: its entries count only for
        // the rules they were verified under (`CredentialStamp`).
        self.model = model
    }

    /// The version this worker is at: its model's, or a later one that
    /// did not change its share.
    private(set) var version: UInt64 = 0

    func acknowledge(version: UInt64) {
        self.version = max(self.version, version)
    }

    /// Applies a delta made against `base`; refuses one made against
    /// another version (the router then sends the whole share).
    func apply(_ delta: WorkerDelta, base: UInt64, version: UInt64) throws(ConfigError) {
        guard let model = self.model, self.version == base else {
            throw ConfigError("", "delta for version \(base) but this worker is at \(self.version)")
        }
        let next = try model.applying(delta, version: version)
        self.keepLimits(under: next)
        self.model = next
        self.version = version
    }

    /// Limit state survives for clients still present whose policy kept its
    /// shape, whether the model came whole or as a delta: a client the
    /// change left alone still has the same policy object, so one rule
    /// serves both.
    private func keepLimits(under model: WorkerModel) {
        self.limiter.retain { clientID, fingerprint in
            model.clients[clientID]?.policy?.fingerprint == fingerprint
        }
    }

    /// New keys for one OIDC source. Cached verifications stay good while
    /// the key that verified them is still published; a withdrawn key
    /// stops vouching for its tokens at once.
    func applyKeys(_ message: KeySetMessage) -> IssuerKeyStore.KeySet {
        self.auth.keys.apply(message)
    }

    func decide(_ request: DecisionRequest) -> DecisionResponse {
        guard case .response(let response) = self.decide(request, mayWaitForKeys: false) else {
            // Unreachable: without permission to wait the engine always answers.
            return DecisionResponse(
                outcome: .unavailable, status: 503, errorCode: ErrorCode.authUnavailable.rawValue,
                reason: ReasonCode.keysUnavailable.rawValue, message: "signing keys unavailable", retryAfterSeconds: 1)
        }
        return response
    }

    /// Decides, or asks the caller to wait for fresh OIDC keys when a token
    /// names a `kid` we lack and a fetch is allowed. Nothing was consumed in
    /// that case (check 6 comes before the limits), so deciding again later
    /// is exact.
    func decide(_ request: DecisionRequest, mayWaitForKeys: Bool) -> Answer {
        guard let model = self.model else {
            return .response(
                DecisionResponse(
                    outcome: .unavailable, status: 503, errorCode: ErrorCode.workerUnavailable.rawValue,
                    reason: ReasonCode.noConfig.rawValue, message: "worker has no config yet", retryAfterSeconds: 1))
        }
        let pipeline = DecisionPipeline(environment: PipelineEnvironment(model: model, limiter: self.limiter, auth: self.auth))
        let (decision, context) = pipeline.decide(request, at: self.clock.now())
        if mayWaitForKeys, let source = context.keysWanted { return .waitForKeys(source: source) }
        return .response(Self.response(decision, context))
    }

    static func response(_ decision: Decision, _ context: DecisionContext) -> DecisionResponse {
        let authType = context.profile?.authType.rawValue ?? ""
        let policyID = context.client?.policy?.id ?? ""
        let rateLimitPolicy = context.limits?.policyHeader ?? ""
        let rateLimit = context.limits?.rateLimitHeader
        switch decision {
        case .allowed(let allowance):
            return DecisionResponse(
                outcome: .allow, status: 200, reason: ReasonCode.allowed.rawValue, rateLimitPolicy: rateLimitPolicy,
                rateLimit: rateLimit, collectionID: allowance.collectionID, stripPrefixBytes: allowance.stripPrefixBytes,
                authType: authType, policyID: policyID)
        case .denied(let error), .unavailable(let error):
            let outcome: DecisionResponse.Outcome = if case .denied = decision { .deny } else { .unavailable }
            return DecisionResponse(
                outcome: outcome, status: error.status, errorCode: error.code.rawValue, reason: error.reason,
                message: error.message, retryAfterSeconds: error.retryAfterSeconds ?? 0, allow: error.allow ?? "",
                rateLimitPolicy: rateLimitPolicy, rateLimit: rateLimit, collectionID: context.route?.collectionID ?? "",
                authType: authType, policyID: policyID)
        }
    }
}
