import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// Fetches every OIDC key source of the config once per instance and
/// hands the JWKS documents to `publish` (the supervisor sends them to the
/// workers). Blocking fetches run on their own small thread pool; the
/// schedule lives in `KeySourceState`. Thread-safe.
final class KeySetService: @unchecked Sendable {
    struct SourceStatus: Sendable {
        let source: String
        let issuer: String
        let version: UInt64
        let lastSuccessUnixMs: Int64
        let lastError: String
        let keysBytes: Int
    }

    static let fetchTimeoutMs = 3_000

    private let states = NIOLockedValueBox<[String: KeySourceState]>([:])
    private let fetcher: HTTPFetcher
    private let pool: NIOThreadPool
    private let loop: any EventLoop
    private let logger: Logger
    private let metrics: GatewayMetrics?
    private let publish: @Sendable (KeySetMessage) -> Void
    private let forget: @Sendable (Set<String>) -> Void
    private var ticker: RepeatedTask? = nil

    init(
        loop: any EventLoop, logger: Logger, metrics: GatewayMetrics? = nil, publish: @escaping @Sendable (KeySetMessage) -> Void,
        forget: @escaping @Sendable (Set<String>) -> Void
    ) throws {
        self.fetcher = try HTTPFetcher()
        self.pool = NIOThreadPool(numberOfThreads: 2)
        self.loop = loop
        self.logger = logger
        self.metrics = metrics
        self.publish = publish
        self.forget = forget
        self.pool.start()
    }

    /// The sources of `model`'s oidc profiles: new ones are fetched now,
    /// gone ones forgotten, unchanged ones keep their keys and schedule.
    /// The management API's issuer (`server.admin`) is one more source.
    func update(_ model: GatewayConfig) {
        var wanted: [String: KeySourceState] = [:]
        func want(issuer: String, jwksURI: String?) {
            let source = OIDCKeySource.id(issuer: issuer, jwksURI: jwksURI)
            let location: KeySourceState.Location
            if let uri = jwksURI, let url = FetchURL(uri) {
                location = .jwks(url)
            } else if let url = FetchURL.discovery(issuer: issuer) {
                location = .discovery(url)
            } else {
                return  // the validator refused this config already
            }
            wanted[source] = KeySourceState(source: source, issuer: issuer, location: location)
        }
        for client in model.clients {
            for profile in client.profiles where profile.auth.type == .oidc {
                guard let issuer = profile.auth.issuer else { continue }
                want(issuer: issuer, jwksURI: profile.auth.jwksURI)
            }
        }
        if let admin = model.server.admin { want(issuer: admin.issuer, jwksURI: admin.jwksURI) }
        let removed = self.states.withLockedValue { states -> Set<String> in
            let gone = Set(states.keys).subtracting(wanted.keys)
            for source in gone { states.removeValue(forKey: source) }
            for (source, fresh) in wanted where states[source] == nil { states[source] = fresh }
            return gone
        }
        if !removed.isEmpty { self.forget(removed) }
        self.tick()
    }

    /// Checks every second for sources due a fetch.
    func start() {
        self.ticker = self.loop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(1)) { [self] _ in self.tick() }
    }

    func stop() {
        self.ticker?.cancel()
        try? self.pool.syncShutdownGracefully()
    }

    /// A worker met an unknown `kid`: fetch now unless the last attempt was
    /// under 10 s ago (then answer with what we have, so its waiting
    /// requests are decided at once) or a fetch is already running.
    func refreshRequested(_ source: String) {
        let mono = Self.monoMs()
        let (action, message) = self.states.withLockedValue { states -> (KeySourceState.RefreshAction?, KeySetMessage?) in
            guard var state = states[source] else { return (nil, nil) }
            let action = state.refreshRequested(mono: mono)
            states[source] = state
            return (action, state.message)
        }
        switch action {
        case .answerNow?: if let message { self.publish(message) }
        case .fetchNow?: self.tick()
        case .wait?, nil: break
        }
    }

    func status() -> [SourceStatus] {
        self.states.withLockedValue { states in
            states.values.sorted { $0.source < $1.source }.map {
                SourceStatus(
                    source: $0.source, issuer: $0.issuer, version: $0.version, lastSuccessUnixMs: $0.lastSuccessUnixMs,
                    lastError: $0.lastError, keysBytes: $0.document.count)
            }
        }
    }

    /// Every source's current document, for a worker that (re)starts.
    func currentMessages() -> [KeySetMessage] {
        self.states.withLockedValue { states in states.values.filter { $0.attemptedUnixMs > 0 }.map(\.message) }
    }

    private func tick() {
        let mono = Self.monoMs()
        let unix = Self.unixMs()
        let due = self.states.withLockedValue { states -> [KeySourceState] in
            var due: [KeySourceState] = []
            for (source, var state) in states where state.isDue(mono: mono) {
                state.started(mono: mono, unix: unix)
                states[source] = state
                due.append(state)
            }
            return due
        }
        for state in due { self.fetch(state) }
    }

    private func fetch(_ state: KeySourceState) {
        let fetcher = self.fetcher
        self.pool.submit { [self] _ in
            let outcome = Result { () throws(FetchError) in try Self.fetchKeys(state.location, issuer: state.issuer, fetcher: fetcher) }
            let mono = Self.monoMs()
            let unix = Self.unixMs()
            let message = self.states.withLockedValue { states -> KeySetMessage? in
                guard var current = states[state.source] else { return nil }
                switch outcome {
                case .success(let (document, maxAge)):
                    _ = current.succeeded(document: document, maxAgeSeconds: maxAge, mono: mono, unix: unix)
                case .failure(let error):
                    current.failed(error: error.description, mono: mono)
                }
                states[state.source] = current
                return current.message
            }
            guard let message else { return }
            if case .success = outcome {
                self.metrics?.keyFetch(source: state.source, succeeded: true)
            } else {
                self.metrics?.keyFetch(source: state.source, succeeded: false)
            }
            switch outcome {
            case .success:
                self.logger.info("oidc keys fetched", metadata: ["source": "\(state.source)", "version": "\(message.version)"])
            case .failure(let error):
                self.logger.error(
                    message.jwksJSON.isEmpty
                        ? "oidc keys unavailable: tokens of this issuer cannot be verified until a fetch succeeds"
                        : "oidc key fetch failed; serving with the cached keys",
                    metadata: ["source": "\(state.source)", "error": "\(error)"])
            }
            self.publish(message)
        }
    }

    /// Discovery (when configured that way), then the JWKS. The discovery
    /// document must name our issuer exactly (OpenID Connect Discovery
    /// §4.3): otherwise keys of another issuer could be substituted.
    static func fetchKeys(
        _ location: KeySourceState.Location, issuer: String, fetcher: HTTPFetcher
    ) throws(FetchError) -> ([UInt8], Int64?) {
        let jwksURL: FetchURL
        switch location {
        case .jwks(let url):
            jwksURL = url
        case .discovery(let url):
            let document = try fetcher.get(url, timeoutMs: Self.fetchTimeoutMs)
            guard document.status == 200 else { throw FetchError("discovery \(url) answered \(document.status)") }
            guard let json = try? JSONValue.parse(document.body) else { throw FetchError("discovery \(url) is not JSON") }
            guard json["issuer"]?.string == issuer else {
                throw FetchError("discovery names issuer \(json["issuer"]?.string ?? "none"), not \(issuer)")
            }
            guard let uri = json["jwks_uri"]?.string, let url = FetchURL(uri) else {
                throw FetchError("discovery has no usable jwks_uri (https, or http on loopback)")
            }
            jwksURL = url
        }
        let document = try fetcher.get(jwksURL, timeoutMs: Self.fetchTimeoutMs)
        guard document.status == 200 else { throw FetchError("JWKS \(jwksURL) answered \(document.status)") }
        guard let json = try? JSONValue.parse(document.body), json["keys"]?.array != nil else {
            throw FetchError("JWKS \(jwksURL) is not a JSON key set")
        }
        return (document.body, KeySourceState.maxAge(cacheControl: document.header("Cache-Control")))
    }

    static func monoMs() -> Int64 { HTTPFetcher.nowMs() }

    static func unixMs() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
