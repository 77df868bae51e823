import Shared

/// Signing keys per JWKS source, as the router fetched and pushed them
/// (one fetch per instance, not per worker). A source is the profile's
/// `jwks_uri` or its issuer's discovery URL (`OIDCKeySource.id`).
final class IssuerKeyStore {
    struct Key {
        let kid: String?
        /// The JWK's own `alg`, when it names one: the key is then used for
        /// that algorithm only (RFC 7517 §4.4).
        let algorithm: JWSAlgorithm?
        let key: AsymmetricKey
    }

    struct KeySet {
        let version: UInt64
        /// When the router last tried to fetch (success or not), Unix s.
        let attemptedUnixSeconds: Int64
        let lastError: String
        let keys: [Key]
        /// JWKs that could not be used, with why: logged once on arrival.
        let skipped: [String]
    }

    /// A fetch may be asked for again this long after the last attempt:
    /// a flood of tokens with made-up `kid`s costs the IdP one request per
    /// 10 s per issuer, however many workers and instances see them.
    static let refreshIntervalSeconds: Int64 = 10

    private(set) var sets: [String: KeySet] = [:]

    /// Replaces a source's keys; returns what was skipped for the log.
    @discardableResult
    func apply(_ message: KeySetMessage) -> KeySet {
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
                    do {
                        keys.append(Key(kid: jwk["kid"]?.string, algorithm: algorithm, key: try AsymmetricKey.fromJWK(jwk)))
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
        let previous = self.sets[message.source]
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
    func refreshAllowed(_ source: String, nowUnixSeconds: Int64) -> Bool {
        guard let set = self.sets[source] else { return true }
        return nowUnixSeconds >= set.attemptedUnixSeconds + Self.refreshIntervalSeconds
    }

    /// Keys that may verify a token with this `alg` and `kid`.
    func candidates(_ source: String, algorithm: JWSAlgorithm, kid: String?) -> [AsymmetricKey] {
        guard let set = self.sets[source] else { return [] }
        return set.keys.compactMap { entry in
            if let kid, entry.kid != kid { return nil }
            if let own = entry.algorithm, own != algorithm { return nil }
            guard entry.key.family == algorithm.keyFamily else { return nil }
            return entry.key
        }
    }

    func hasKeys(_ source: String) -> Bool { !(self.sets[source]?.keys.isEmpty ?? true) }
}
