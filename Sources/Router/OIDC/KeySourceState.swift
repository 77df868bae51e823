import Shared

/// The fetch schedule of one OIDC key source, apart from any I/O so tests
/// drive it with plain numbers: when to fetch, what a worker's request for
/// fresh keys leads to, what to tell the workers. Times are milliseconds:
/// `mono` on the monotonic clock (scheduling), `unix` on the wall clock
/// (what workers compare against).
struct KeySourceState: Sendable {
    enum Location: Sendable, Equatable {
        case discovery(FetchURL)
        case jwks(FetchURL)
    }

    enum RefreshAction: Equatable {
        /// A fetch is already on its way; its result goes to everyone.
        case wait
        /// The last attempt is under 10 s old: answer with what we have.
        case answerNow
        /// Fetch now.
        case fetchNow
    }

    static let refreshIntervalMs: Int64 = 10_000
    static let defaultTTLMs: Int64 = 600_000
    static let minTTLMs: Int64 = 60_000
    static let maxTTLMs: Int64 = 86_400_000
    static let firstRetryMs: Int64 = 5_000
    static let maxRetryMs: Int64 = 300_000

    let source: String
    let issuer: String
    let location: Location
    private(set) var version: UInt64 = 0
    private(set) var document: [UInt8] = []
    private(set) var attemptedUnixMs: Int64 = 0
    private(set) var lastSuccessUnixMs: Int64 = 0
    private(set) var lastError = ""
    private(set) var fetching = false
    private(set) var nextFetchMono: Int64 = 0
    private(set) var failures = 0
    private var lastAttemptMono: Int64? = nil

    init(source: String, issuer: String, location: Location) {
        self.source = source
        self.issuer = issuer
        self.location = location
    }

    func isDue(mono: Int64) -> Bool { !self.fetching && mono >= self.nextFetchMono }

    mutating func started(mono: Int64, unix: Int64) {
        self.fetching = true
        self.lastAttemptMono = mono
        self.attemptedUnixMs = unix
    }

    /// A good document arrived. Refreshes at 80% of its lifetime
    /// (`Cache-Control: max-age`, bounded to 1 min … 24 h; 10 min without
    /// one), so keys are renewed in the background before they expire.
    /// True when the document changed.
    mutating func succeeded(document: [UInt8], maxAgeSeconds: Int64?, mono: Int64, unix: Int64) -> Bool {
        self.fetching = false
        self.failures = 0
        self.lastError = ""
        self.lastSuccessUnixMs = unix
        let ttl = min(max((maxAgeSeconds ?? Self.defaultTTLMs / 1000) * 1000, Self.minTTLMs), Self.maxTTLMs)
        self.nextFetchMono = mono + ttl * 4 / 5
        guard document != self.document else { return false }
        self.document = document
        self.version += 1
        return true
    }

    /// The IdP did not answer well: keep the keys we have (serving on them
    /// is better than refusing every token) and retry with backoff.
    mutating func failed(error: String, mono: Int64) {
        self.fetching = false
        self.failures += 1
        self.lastError = error
        let backoff = min(Self.firstRetryMs << Int64(min(self.failures - 1, 16)), Self.maxRetryMs)
        self.nextFetchMono = mono + backoff
    }

    /// A worker saw a `kid` it does not know (or has no keys at all).
    mutating func refreshRequested(mono: Int64) -> RefreshAction {
        if self.fetching { return .wait }
        if let last = self.lastAttemptMono, mono - last < Self.refreshIntervalMs { return .answerNow }
        self.nextFetchMono = mono
        return .fetchNow
    }

    var message: KeySetMessage {
        KeySetMessage(
            source: self.source, version: self.version, jwksJSON: self.document, attemptedUnixMs: self.attemptedUnixMs,
            error: self.lastError)
    }

    /// `max-age` from a Cache-Control value; `no-store`/`no-cache` count as 0
    /// (then the minimum lifetime applies).
    static func maxAge(cacheControl: String?) -> Int64? {
        guard let cacheControl else { return nil }
        var result: Int64? = nil
        for directive in cacheControl.lowercased().split(separator: ",") {
            let trimmed = directive.split(separator: "=", maxSplits: 1).map { $0.trimmingASCIIWhitespace() }
            guard let name = trimmed.first else { continue }
            if name == "no-store" || name == "no-cache" { return 0 }
            if name == "max-age", trimmed.count == 2, let value = Int64(trimmed[1]), value >= 0 {
                result = value
            }
        }
        return result
    }
}
