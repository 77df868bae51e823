import Shared

/// Tokens this worker already verified, by the SHA-256 of the token, so a
/// client that presents the same JWT again costs a hash and a lookup, not
/// an RSA verify and two JSON parses. Bounded (least recently used entries
/// go first) and keyed by profile: a token verified for one profile proves
/// nothing for another. `epoch` changes whenever the model or any key set
/// changes, which invalidates every entry at once (a rotated secret or a
/// withdrawn key must not keep old tokens alive).
final class VerifiedTokenCache {
    private struct Entry {
        var digest: SHA256Digest
        var profileID: String
        var epoch: UInt64
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

    /// True when `digest` was verified for `profileID` under this epoch and
    /// `now` is inside its validity window.
    func contains(_ digest: SHA256Digest, profileID: String, epoch: UInt64, now: Int64) -> Bool {
        guard let slot = self.slots[digest] else {
            self.misses &+= 1
            return false
        }
        let entry = self.entries[Int(slot)]
        guard entry.profileID == profileID, entry.epoch == epoch, now >= entry.validity.from, now < entry.validity.until else {
            self.misses &+= 1
            return false
        }
        self.hits &+= 1
        self.touch(slot)
        return true
    }

    func insert(_ digest: SHA256Digest, profileID: String, epoch: UInt64, validity: ClaimChecks.Validity) {
        if let slot = self.slots[digest] {
            self.entries[Int(slot)].profileID = profileID
            self.entries[Int(slot)].epoch = epoch
            self.entries[Int(slot)].validity = validity
            self.touch(slot)
            return
        }
        let slot: Int32
        if self.entries.count < self.capacity {
            slot = Int32(self.entries.count)
            self.entries.append(Entry(digest: digest, profileID: profileID, epoch: epoch, validity: validity, newer: -1, older: -1))
        } else {
            // Reuse the least recently used slot.
            slot = self.oldest
            self.unlink(slot)
            self.slots.removeValue(forKey: self.entries[Int(slot)].digest)
            self.entries[Int(slot)] = Entry(digest: digest, profileID: profileID, epoch: epoch, validity: validity, newer: -1, older: -1)
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
