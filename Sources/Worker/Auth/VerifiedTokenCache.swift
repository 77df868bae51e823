import Shared

/// What a verification was made against: the profile, its owner and every
/// key of its auth config. A config change that leaves a profile's auth
/// alone keeps its stamp, so its cached tokens stay good; any change to
/// it (a rotated secret, a new audience or claim rule) gives a new stamp
/// and each token is verified again.
///
/// Two differently salted values of Swift's `Hasher` (SipHash under a key
/// drawn at random per process), so nobody outside can aim for a
/// collision. The jwt secret's reference (`enc:v1:` ciphertext or `$VAR`)
/// is hashed rather than the secret: what it resolves to is fixed for the
/// worker's life, which reads its environment and `ENCRYPTION_KEY` once.
struct CredentialStamp: Equatable {
    let high: Int
    let low: Int

    init(profileID: String, clientID: String, auth: AuthConfig) {
        func hash(_ salt: UInt8) -> Int {
            var hasher = Hasher()
            hasher.combine(salt)
            hasher.combine(profileID)
            hasher.combine(clientID)
            hasher.combine(auth)
            return hasher.finalize()
        }
        self.high = hash(1)
        self.low = hash(2)
    }
}

/// Tokens this worker already verified, by the SHA-256 of the token, so a
/// client that presents the same JWT again costs a hash and a lookup, not
/// an RSA verify and two JSON parses. Bounded (least recently used entries
/// go first).
///
/// An entry counts only for the rules it was verified under (its
/// `CredentialStamp`: a token verified for one profile proves nothing for
/// another) and, for oidc, only while the issuer still publishes the key
/// that verified it. Config pushes and JWKS refreshes therefore keep the
/// cache: on a fleet where operators change something every few seconds,
/// dropping it on every change meant re-running every RSA verify after each.
final class VerifiedTokenCache {
    private struct Entry {
        var digest: SHA256Digest
        var stamp: CredentialStamp
        /// The IdP key that verified an oidc token; nil for jwt.
        var key: AsymmetricKey?
        var validity: ClaimChecks.Validity
        var newer: Int32
        var older: Int32
    }

    let capacity: Int
    private var entries: [Entry] = []
    private var slots: [SHA256Digest: Int32] = [:]
    /// Most and least recently used, -1 when empty.
    private var newest: Int32 = -1
    private var oldest: Int32 = -1
    private(set) var hits: UInt64 = 0
    private(set) var misses: UInt64 = 0

    init(capacity: Int = 10_000) {
        self.capacity = max(1, capacity)
        self.entries.reserveCapacity(min(self.capacity, 1024))
    }

    var count: Int { self.slots.count }

    /// True when `digest` was verified under `stamp`, `now` is inside its
    /// validity window and `trusted` still vouches for the key that
    /// verified it (oidc).
    func contains(_ digest: SHA256Digest, stamp: CredentialStamp, now: Int64, trusted: (AsymmetricKey) -> Bool = { _ in true }) -> Bool {
        guard let slot = self.slots[digest] else {
            self.misses &+= 1
            return false
        }
        let entry = self.entries[Int(slot)]
        guard entry.stamp == stamp, now >= entry.validity.from, now < entry.validity.until, entry.key.map(trusted) ?? true else {
            self.misses &+= 1
            return false
        }
        self.hits &+= 1
        self.touch(slot)
        return true
    }

    func insert(_ digest: SHA256Digest, stamp: CredentialStamp, key: AsymmetricKey? = nil, validity: ClaimChecks.Validity) {
        if let slot = self.slots[digest] {
            self.entries[Int(slot)].stamp = stamp
            self.entries[Int(slot)].key = key
            self.entries[Int(slot)].validity = validity
            self.touch(slot)
            return
        }
        let slot: Int32
        if self.entries.count < self.capacity {
            slot = Int32(self.entries.count)
            self.entries.append(Entry(digest: digest, stamp: stamp, key: key, validity: validity, newer: -1, older: -1))
        } else {
            // Reuse the least recently used slot.
            slot = self.oldest
            self.unlink(slot)
            self.slots.removeValue(forKey: self.entries[Int(slot)].digest)
            self.entries[Int(slot)] = Entry(digest: digest, stamp: stamp, key: key, validity: validity, newer: -1, older: -1)
        }
        self.slots[digest] = slot
        self.pushNewest(slot)
    }

    private func touch(_ slot: Int32) {
        guard slot != self.newest else { return }
        self.unlink(slot)
        self.pushNewest(slot)
    }

    private func unlink(_ slot: Int32) {
        let entry = self.entries[Int(slot)]
        if entry.newer >= 0 { self.entries[Int(entry.newer)].older = entry.older } else { self.newest = entry.older }
        if entry.older >= 0 { self.entries[Int(entry.older)].newer = entry.newer } else { self.oldest = entry.newer }
        self.entries[Int(slot)].newer = -1
        self.entries[Int(slot)].older = -1
    }

    private func pushNewest(_ slot: Int32) {
        self.entries[Int(slot)].older = self.newest
        self.entries[Int(slot)].newer = -1
        if self.newest >= 0 { self.entries[Int(self.newest)].newer = slot }
        self.newest = slot
        if self.oldest < 0 { self.oldest = slot }
    }
}
