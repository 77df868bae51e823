/// Swift forms of the router<->worker messages (`portcullis.proto`). Only
/// `FrameCodec` touches the protobuf-c structs.
public enum WireProtocol {
    /// Bump on any change an older peer would misread (see the .proto).
    public static let version: UInt32 = 5
    /// Router -> worker frames carry config snapshots, so they may be large.
    public static let maxRouterFrameBytes = 64 << 20
    /// Worker -> router frames are decisions and acks: small.
    public static let maxWorkerFrameBytes = 1 << 20
}

public struct Hello: Sendable, Equatable {
    public enum Role: String, Sendable { case router, worker }
    public var protocolVersion: UInt32
    public var role: Role
    public var workerIndex: UInt32
    public var pid: UInt32

    public init(protocolVersion: UInt32 = WireProtocol.version, role: Role, workerIndex: UInt32, pid: UInt32) {
        self.protocolVersion = protocolVersion
        self.role = role
        self.workerIndex = workerIndex
        self.pid = pid
    }
}

/// The `RateLimit` header's value (SPEC §2, draft-ietf-httpapi-ratelimit-
/// headers): the tightest limit's name, requests remaining and seconds until
/// reset. Carried as parts and written by the router, because a string of
/// it, different for every request, cost an allocation on both sides.
public struct RateLimitValue: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    public let remaining: Int
    public let reset: Int

    public init(name: String, remaining: Int, reset: Int) {
        self.name = name
        self.remaining = remaining
        self.reset = reset
    }

    /// At most what `write(into:)` writes.
    public var maxBytes: Int { self.name.utf8.count + 48 }

    public func write(into out: inout ByteWriter) {
        out.write(byte: UInt8(ascii: "\""))
        out.write(self.name)
        out.write("\";r=")
        out.write(decimal: self.remaining)
        out.write(";t=")
        out.write(decimal: self.reset)
    }

    /// `"second";r=9;t=1`
    public var description: String { String.writing(self.maxBytes) { self.write(into: &$0) } }
}

/// What the worker decides on. A class of constants, like
/// `DecisionResponse`: it goes from the decoder through the pipeline's
/// context, and a struct of nine strings was nine retains per copy.
public final class DecisionRequest: Sendable, Equatable, CustomStringConvertible {
    public let clientID: String
    public let profileID: String
    public let method: String
    public let path: String
    public let sourceIP: IPAddress?
    public let authorization: String
    public let certSubject: String
    public let certFingerprint: String

    public init(
        clientID: String = "", profileID: String = "", method: String = "GET", path: String = "/",
        sourceIP: IPAddress? = nil, authorization: String = "",
        certSubject: String = "", certFingerprint: String = ""
    ) {
        self.clientID = clientID
        self.profileID = profileID
        self.method = method
        self.path = path
        self.sourceIP = sourceIP
        self.authorization = authorization
        self.certSubject = certSubject
        self.certFingerprint = certFingerprint
    }

    public static func == (lhs: DecisionRequest, rhs: DecisionRequest) -> Bool {
        lhs.clientID == rhs.clientID && lhs.profileID == rhs.profileID && lhs.method == rhs.method && lhs.path == rhs.path
            && lhs.sourceIP == rhs.sourceIP && lhs.authorization == rhs.authorization
            && lhs.certSubject == rhs.certSubject && lhs.certFingerprint == rhs.certFingerprint
    }

    /// Never the credential: this may end up in a test's output or a log.
    public var description: String {
        "DecisionRequest(client: \(self.clientID), profile: \(self.profileID), \(self.method) \(self.path), "
            + "source: \(self.sourceIP?.description ?? "unknown"), authorization: \(self.authorization.isEmpty ? "none" : "<redacted>"), "
            + "cert: \(self.certSubject) \(self.certFingerprint))"
    }
}

/// A worker's answer. A class of immutable fields rather than a struct:
/// it travels from the frame decoder through the link to the request and
/// into the log, and a struct of nine strings cost nine retains and
/// releases at every hop; a reference costs one.
public final class DecisionResponse: Sendable, Equatable, CustomStringConvertible {
    public enum Outcome: Sendable, Equatable { case allow, deny, unavailable }

    public let outcome: Outcome
    public let status: Int
    public let errorCode: String
    public let reason: String
    public let message: String
    public let retryAfterSeconds: Int
    public let allow: String
    public let rateLimitPolicy: String
    public let rateLimit: RateLimitValue?
    public let collectionID: String
    public let stripPrefixBytes: Int
    public let authType: String
    public let policyID: String

    public init(
        outcome: Outcome, status: Int = 200, errorCode: String = "", reason: String = "", message: String = "",
        retryAfterSeconds: Int = 0, allow: String = "", rateLimitPolicy: String = "", rateLimit: RateLimitValue? = nil,
        collectionID: String = "", stripPrefixBytes: Int = 0, authType: String = "", policyID: String = ""
    ) {
        self.outcome = outcome
        self.status = status
        self.errorCode = errorCode
        self.reason = reason
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
        self.allow = allow
        self.rateLimitPolicy = rateLimitPolicy
        self.rateLimit = rateLimit
        self.collectionID = collectionID
        self.stripPrefixBytes = stripPrefixBytes
        self.authType = authType
        self.policyID = policyID
    }

    /// The fields a decision template holds, then the per-request ones.
    public static func == (lhs: DecisionResponse, rhs: DecisionResponse) -> Bool {
        DecisionTemplates.sameFixedFields(lhs, rhs) && lhs.retryAfterSeconds == rhs.retryAfterSeconds && lhs.rateLimit == rhs.rateLimit
    }

    public var description: String {
        "DecisionResponse(\(self.outcome), \(self.status), errorCode: \(self.errorCode), reason: \(self.reason), "
            + "message: \(self.message), retryAfter: \(self.retryAfterSeconds), allow: \(self.allow), "
            + "rateLimitPolicy: \(self.rateLimitPolicy), rateLimit: \(self.rateLimit?.description ?? ""), collection: \(self.collectionID), "
            + "strip: \(self.stripPrefixBytes), authType: \(self.authType), policy: \(self.policyID))"
    }
}

public struct ConfigSnapshotMessage: Sendable, Equatable {
    public var version: UInt64
    /// A whole `WorkerSnapshot`.
    public var modelJSON: [UInt8]
    /// Or a `WorkerDelta` on top of `baseVersion`.
    public var deltaJSON: [UInt8]
    public var baseVersion: UInt64
    public init(version: UInt64, modelJSON: [UInt8], deltaJSON: [UInt8] = [], baseVersion: UInt64 = 0) {
        self.version = version
        self.modelJSON = modelJSON
        self.deltaJSON = deltaJSON
        self.baseVersion = baseVersion
    }
}

public struct ConfigAck: Sendable, Equatable {
    public var version: UInt64
    public var error: String
    public init(version: UInt64, error: String = "") {
        self.version = version
        self.error = error
    }
}

/// How a worker's quota sync stands (worker -> router).
public struct WorkerStatusMessage: Sendable, Equatable {
    public var quotaHealth: String
    public var quotaAccounts: Int
    public var quotaUnsynced: Int
    public var quotaBatches: UInt64
    public var quotaFailures: UInt64
    public var quotaLastSyncUnixMs: Int64
    public var quotaLastError: String

    public init(
        quotaHealth: String, quotaAccounts: Int = 0, quotaUnsynced: Int = 0, quotaBatches: UInt64 = 0,
        quotaFailures: UInt64 = 0, quotaLastSyncUnixMs: Int64 = 0, quotaLastError: String = ""
    ) {
        self.quotaHealth = quotaHealth
        self.quotaAccounts = quotaAccounts
        self.quotaUnsynced = quotaUnsynced
        self.quotaBatches = quotaBatches
        self.quotaFailures = quotaFailures
        self.quotaLastSyncUnixMs = quotaLastSyncUnixMs
        self.quotaLastError = quotaLastError
    }
}

/// One OIDC key source's JWKS as the router last fetched it (router -> worker).
public struct KeySetMessage: Sendable, Equatable {
    public var source: String
    public var version: UInt64
    public var jwksJSON: [UInt8]
    public var attemptedUnixMs: Int64
    public var error: String

    public init(source: String, version: UInt64, jwksJSON: [UInt8], attemptedUnixMs: Int64, error: String = "") {
        self.source = source
        self.version = version
        self.jwksJSON = jwksJSON
        self.attemptedUnixMs = attemptedUnixMs
        self.error = error
    }
}

public enum FrameBody: Sendable, Equatable {
    case hello(Hello)
    case decide(DecisionRequest)
    case decision(DecisionResponse)
    case config(ConfigSnapshotMessage)
    case configAck(ConfigAck)
    case status(WorkerStatusMessage)
    case keySet(KeySetMessage)
    /// Worker -> router: fetch this key source again (rate-limited there).
    case keyRefresh(source: String)
}

public struct Frame: Sendable, Equatable {
    public var id: UInt64
    public var body: FrameBody
    public init(id: UInt64, body: FrameBody) {
        self.id = id
        self.body = body
    }
}

public enum FrameError: Error, Equatable, Sendable, CustomStringConvertible {
    case oversized(length: Int, limit: Int)
    case malformed
    case missingBody
    case invalidField(String)

    public var description: String {
        switch self {
        case .oversized(let length, let limit): return "frame of \(length) bytes exceeds the \(limit)-byte limit"
        case .malformed: return "frame is not a valid protobuf Envelope"
        case .missingBody: return "frame has no body"
        case .invalidField(let field): return "frame field \(field) is invalid"
        }
    }
}
