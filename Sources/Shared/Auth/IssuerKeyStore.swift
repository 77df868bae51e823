/// Signing keys per JWKS source, as the router fetched and pushed them
/// (one fetch per instance, not per worker). A source is the profile's
/// `jwks_uri` or its issuer's discovery URL (`OIDCKeySource.id`).
public final class IssuerKeyStore {
    public struct Key {
        public let kid: String?
        /// The JWK's own `alg`, when it names one: the key is then used for
        /// that algorithm only (RFC 7517 §4.4).
        public let algorithm: JWSAlgorithm?
        public let key: AsymmetricKey
        /// The JWK's public members as published; an unchanged JWK keeps
        /// its `AsymmetricKey` across refreshes (see `apply`).
        let material: String
    }

    public struct KeySet {
        public let version: UInt64
        /// When the router last tried to fetch (success or not), Unix s.
        public let attemptedUnixSeconds: Int64
        public let lastError: String
        public let keys: [Key]
        /// JWKs that could not be used, with why: logged once on arrival.
        public let skipped: [String]
    }

    /// A fetch may be asked for again this long after the last attempt:
    /// a flood of tokens with made-up `kid`s costs the IdP one request per
    /// 10 s per issuer, however many workers and instances see them.
    public static let refreshIntervalSeconds: Int64 = 10

    public private(set) var sets: [String: KeySet] = [:]

    public init() {}

    /// Replaces a source's keys; returns what was skipped for the log.
    /// A JWK published again unchanged (same `kid`, `alg` and public
    /// members) keeps the key object it had: workers' cached verifications
    /// name the key that made them, and a refresh that only adds a key must
    /// not send every cached token back through RSA.
    @discardableResult
    public func apply(_ message: KeySetMessage) -> KeySet {
        let previous = self.sets[message.source]
        var keys: [Key] = []
        var skipped: [String] = []
        if !message.jwksJSON.isEmpty {
            switch Result(catching: { () throws(JSONParseError) in try JSONValue.parse(message.jwksJSON) }) {
            case .success(let document):
                for (index, jwk) in (document["keys"]?.array ?? []).enumerated() {
                    let name = jwk["kid"]?.string ?? "#\(index)"
                    if let use = jwk["use"], use.string != "sig" {
                        skipped.append("\(name): use is not sig")
                        continue
                    }
                    var algorithm: JWSAlgorithm? = nil
                    if let alg = jwk["alg"]?.string {
                        guard let known = JWSAlgorithm(rawValue: alg), !known.isHMAC else {
                            skipped.append("\(name): alg \(alg) is not supported")
                            continue
                        }
                        algorithm = known
                    }
                    let kid = jwk["kid"]?.string
                    let material = ["kty", "n", "e", "crv", "x", "y"].map { jwk[$0]?.string ?? "" }.joined(separator: ".")
                    if let same = previous?.keys.first(where: { $0.kid == kid && $0.algorithm == algorithm && $0.material == material }) {
                        keys.append(same)
                        continue
                    }
                    do {
                        keys.append(Key(kid: kid, algorithm: algorithm, key: try AsymmetricKey.fromJWK(jwk), material: material))
                    } catch {
                        skipped.append("\(name): \(error)")
                    }
                }
            case .failure(let error):
                skipped.append("JWKS is not JSON: \(error)")
            }
        }
        // A fetch that failed keeps the keys we had: an IdP outage must not
        // turn every valid token into a 401.
        if message.jwksJSON.isEmpty, let previous {
            keys = previous.keys
        }
        let set = KeySet(
            version: message.version, attemptedUnixSeconds: message.attemptedUnixMs / 1000, lastError: message.error,
            keys: keys, skipped: skipped)
        self.sets[message.source] = set
        return set
    }

    /// Whether an unknown `kid` (or no keys at all) may trigger a fetch now.
    public func refreshAllowed(_ source: String, nowUnixSeconds: Int64) -> Bool {
        guard let set = self.sets[source] else { return true }
        return nowUnixSeconds >= set.attemptedUnixSeconds + Self.refreshIntervalSeconds
    }

    /// Keys that may verify a token with this `alg` and `kid`.
    public func candidates(_ source: String, algorithm: JWSAlgorithm, kid: String?) -> [AsymmetricKey] {
        guard let set = self.sets[source] else { return [] }
        return set.keys.compactMap { entry in
            if let kid, entry.kid != kid { return nil }
            if let own = entry.algorithm, own != algorithm { return nil }
            guard entry.key.family == algorithm.keyFamily else { return nil }
            return entry.key
        }
    }

    /// Whether `source` still publishes `key` (the same object: see `apply`).
    public func holds(_ key: AsymmetricKey, source: String) -> Bool {
        self.sets[source]?.keys.contains { $0.key === key } ?? false
    }

    public func hasKeys(_ source: String) -> Bool { !(self.sets[source]?.keys.isEmpty ?? true) }
}
