import Shared

/// Tuning of quota sharing. The defaults are what README "Quotas across
/// instances" documents.
struct QuotaSyncSettings: Sendable {
    /// At most one Redis call per worker per interval: every due account
    /// rides in that one call.
    var batchIntervalNanos: UInt64 = 100_000_000
    /// While Redis is down, reconnect attempts are this far apart.
    var downRetryNanos: UInt64 = 1_000_000_000
    /// A claim covers about this many seconds of the client's observed rate.
    var sliceSeconds: Double = 30
    /// Spends are written to Redis when this many are unsynced…
    var flushAfterSpends = 1000
    /// …or the oldest unsynced one is this old…
    var flushAfterNanos: UInt64 = 30_000_000_000
    /// …or the client has been quiet this long.
    var idleFlushNanos: UInt64 = 1_000_000_000
    /// A holder told the budget is gone asks again at most this often, and
    /// only if requests keep coming (another holder may have released some).
    var exhaustedRecheckNanos: UInt64 = 5_000_000_000
    /// Accounts unused this long, and fully synced, leave memory; Redis has them.
    var forgetAfterNanos: UInt64 = 600_000_000_000
    /// Keys per Redis call, so one script never holds Redis for long.
    var maxBatchKeys = 512
    /// Redis connect and command timeout.
    var redisTimeoutMs = 250
    /// With nothing to sync, a PING this often notices a Redis that went
    /// away (or restarted empty: the reconnect rewrites every account).
    var keepaliveNanos: UInt64 = 2_000_000_000
}

/// One key's part of a sync call.
struct QuotaSyncEntry: Equatable, Sendable {
    var key: String
    var limit: Int
    var spent: Int
    var granted: Int
    /// -1: only record `spent`/`granted` (no read); 0: read and reconcile;
    /// > 0: also claim up to this many more.
    var want: Int
    var expireAt: Int64
}

/// Redis's answer for one full entry (see `QuotaScript`).
struct QuotaSyncReply: Equatable, Sendable {
    var storedSpent: Int
    var granted: Int
    var othersGranted: Int
    var othersSpent: Int
    var holders: Int
    var newlyGranted: Int
}

struct QuotaSyncBatch: Sendable {
    var entries: [QuotaSyncEntry]
}

/// Every quota account this worker holds, and the sync protocol with Redis,
/// as plain synchronous code over injected time (the I/O is `QuotaSyncer`).
///
/// The protocol, per key (a Redis hash with `u:<holder>` = spent and
/// `g:<holder>` = granted for each holder, a holder being one worker slot of
/// one instance):
/// - A holder allows requests while it has granted budget left; it asks for
///   more (a claim) when half of its last slice is spent. Redis grants from
///   `limit - Σ g`, atomically in one script, so grants never exceed the limit.
/// - Values sent are absolute and merged with `max`, so a lost reply or a
///   replayed call never double counts, and a Redis that restarted empty is
///   rebuilt by the holders' next calls.
/// - Between a claim and its reply a holder may borrow up to `borrowCap`;
///   the script raises `g` to cover what was spent. That is the only way
///   the fleet can pass the limit while Redis is up.
final class QuotaLedger {
    let settings: QuotaSyncSettings
    private(set) var health: QuotaHealth
    private var accounts: [String: QuotaAccount] = [:]
    /// Largest holder count any reply showed: the guess for keys not seen yet.
    private(set) var holdersEstimate = 2
    private var lastBatchNanos: UInt64? = nil
    private(set) var batches: UInt64 = 0
    private(set) var failures: UInt64 = 0
    private(set) var lastSyncUnixMs: Int64 = 0
    private(set) var lastError = ""
    let journal: SpendJournal?
    /// Set for the final flush: no more claims, only spends written.
    var stopping = false
    /// A holder is spending beyond its grant (borrowing or refusing with
    /// `pending`): its claim goes out without waiting for the batch interval.
    private var urgent = false

    init(shared: Bool, settings: QuotaSyncSettings = QuotaSyncSettings(), journal: SpendJournal? = nil) {
        self.settings = settings
        self.health = shared ? .connecting : .local
        self.journal = journal
    }

    var accountCount: Int { self.accounts.count }

    /// The account for a client's quota window, created on first use (from
    /// the journal if a previous process of this worker slot left one).
    func account(
        clientID: String, name: String, window: QuotaWindow, limit: Int, failureMode: RedisFailureMode, now: UInt64
    ) -> QuotaAccount {
        let key = QuotaAccount.key(clientID: clientID, name: name, windowStart: window.start)
        if let existing = self.accounts[key] {
            existing.limit = limit
            existing.failureMode = failureMode
            return existing
        }
        let account = QuotaAccount(key: key, window: window, limit: limit, failureMode: failureMode, now: now)
        if let journal = self.journal {
            if let restored = journal.restored(key) {
                account.spent = restored.spent
                account.granted = restored.granted
                // Spends since the last sync are in `spent`; the next full
                // sync reconciles everything else.
                account.firstUnsyncedNanos = restored.spent > 0 ? now : nil
                account.lastSpendNanos = now
            }
            account.journalSlot = journal.allocate(key: key, windowEnd: window.end)
            self.journalWrite(account)
        }
        self.accounts[key] = account
        return account
    }

    func room(_ account: QuotaAccount) -> QuotaRoom {
        let room = account.room(self.health, holdersEstimate: self.holdersEstimate)
        if room != .room { account.deniedSinceReply = true }
        if (room == .room || room == .pending) && account.spent >= account.granted && self.health != .down && self.health != .local {
            self.urgent = true
        }
        return room
    }

    func remaining(_ account: QuotaAccount) -> Int { account.remaining(self.health) }

    func spend(_ account: QuotaAccount, now: UInt64) {
        account.spent += 1
        account.lastSpendNanos = now
        account.lastUseNanos = now
        if account.firstUnsyncedNanos == nil { account.firstUnsyncedNanos = now }
        self.journalWrite(account)
    }

    func touch(_ account: QuotaAccount, now: UInt64) { account.lastUseNanos = now }

    // MARK: sync

    /// The next call to make, or nil when nothing is due or it is too soon.
    /// Marks the entries in flight: every batch must be answered with
    /// `completed` or `failed`.
    func nextBatch(now: UInt64, unixSeconds: Int64) -> QuotaSyncBatch? {
        guard self.health != .local else {
            self.forgetFinished(now: now, unixSeconds: unixSeconds)
            return nil
        }
        if let last = self.lastBatchNanos {
            let spacing = self.health == .down ? self.settings.downRetryNanos : self.settings.batchIntervalNanos
            if now &- last < spacing && !(self.urgent && self.health != .down) { return nil }
        }
        self.urgent = false
        self.forgetFinished(now: now, unixSeconds: unixSeconds)
        var entries: [QuotaSyncEntry] = []
        for account in self.accounts.values where !account.inFlight {
            guard let entry = self.entry(for: account, now: now, unixSeconds: unixSeconds) else { continue }
            entries.append(entry)
            account.inFlight = true
            if entries.count == self.settings.maxBatchKeys { break }
        }
        if entries.isEmpty {
            if self.stopping { return nil }
            // A probe (PING): before the first sync, while down, and now and then.
            let idleFor = self.lastBatchNanos.map { now &- $0 } ?? UInt64.max
            guard self.health != .up || idleFor >= self.settings.keepaliveNanos else { return nil }
        }
        self.lastBatchNanos = now
        return QuotaSyncBatch(entries: entries)
    }

    private func entry(for account: QuotaAccount, now: UInt64, unixSeconds: Int64) -> QuotaSyncEntry? {
        let expireAt = account.window.end + 86_400  // usage stays readable a day after the window
        let windowOpen = unixSeconds < account.window.end
        var want = -1
        if self.stopping {
            // Last words: record spends and hand back the unspent slice, so
            // the other holders can use it (a record-only write of our own
            // two fields, correct whatever Redis thinks they were).
            guard account.spent > account.syncedSpent || (account.known && account.granted > account.spent) else { return nil }
            return QuotaSyncEntry(
                key: account.key, limit: account.limit, spent: account.spent, granted: account.spent, want: -1,
                expireAt: expireAt)
        } else if windowOpen && self.needsClaim(account, now: now) {
            want = account.want(sliceSeconds: self.settings.sliceSeconds, holdersEstimate: self.holdersEstimate)
        } else if account.needsFull {
            want = 0
        } else if !self.needsFlush(account, now: now, windowOpen: windowOpen) {
            return nil
        }
        return QuotaSyncEntry(
            key: account.key, limit: account.limit, spent: account.spent, granted: account.granted, want: want,
            expireAt: expireAt)
    }

    private func needsClaim(_ account: QuotaAccount, now: UInt64) -> Bool {
        if !account.known { return true }
        if account.unclaimed <= 0 {
            return account.deniedSinceReply && now &- account.lastReplyNanos >= self.settings.exhaustedRecheckNanos
        }
        // Ask when half the last slice is gone, or when what is left would
        // not last ~3 batch intervals at the client's pace: the answer then
        // comes back before the slice runs dry and nobody waits (`pending`).
        let horizon = Double(self.settings.batchIntervalNanos) * 3 / 1e9
        let lowWater = max(account.lastSlice / 2, Int((account.rate * horizon).rounded(.up)))
        return account.granted - account.spent <= lowWater
    }

    private func needsFlush(_ account: QuotaAccount, now: UInt64, windowOpen: Bool) -> Bool {
        let unsynced = account.spent - account.syncedSpent
        guard unsynced > 0, let first = account.firstUnsyncedNanos else { return false }
        return !windowOpen || unsynced >= self.settings.flushAfterSpends
            || now &- first >= self.settings.flushAfterNanos
            || now &- account.lastSpendNanos >= self.settings.idleFlushNanos
    }

    /// Applies Redis's answers; `replies[i]` is nil for a record-only entry.
    /// `reconnected`: this call opened a new connection, so Redis may have
    /// restarted empty and every account must be written again.
    func completed(
        _ batch: QuotaSyncBatch, replies: [QuotaSyncReply?], reconnected: Bool, now: UInt64, unixMs: Int64
    ) {
        self.health = .up
        self.batches += 1
        self.lastSyncUnixMs = unixMs
        if reconnected {
            for account in self.accounts.values { account.needsFull = true }
        }
        for (entry, reply) in zip(batch.entries, replies) {
            guard let account = self.accounts[entry.key] else { continue }
            account.inFlight = false
            account.syncedSpent = max(account.syncedSpent, entry.spent)
            if account.syncedSpent >= account.spent { account.firstUnsyncedNanos = nil }
            guard let reply else {
                // Redis now holds exactly what we wrote.
                account.granted = max(entry.granted, entry.spent)
                self.journalWrite(account)
                continue
            }
            // Another process of this slot may have spent before us (a
            // restart without a journal): adopt what Redis holds.
            account.spent = max(account.spent, reply.storedSpent)
            account.syncedSpent = max(account.syncedSpent, reply.storedSpent)
            if account.syncedSpent >= account.spent { account.firstUnsyncedNanos = nil }
            account.granted = max(account.granted, reply.granted)
            account.othersGranted = reply.othersGranted
            account.holders = max(1, reply.holders)
            self.holdersEstimate = max(self.holdersEstimate, account.holders)
            account.known = true
            account.needsFull = false
            account.lastReplyNanos = now
            account.deniedSinceReply = false
            if entry.want > 0 {
                account.lastSlice = reply.newlyGranted
                let elapsed = Double(now &- account.rateMarkNanos) / 1e9
                if elapsed >= 0.1 {
                    account.rate = Double(account.spent - account.rateMarkSpent) / elapsed
                    account.rateMarkSpent = account.spent
                    account.rateMarkNanos = now
                }
            }
            self.journalWrite(account)
        }
    }

    func failed(_ batch: QuotaSyncBatch, error: String, now: UInt64) {
        self.health = .down
        self.failures += 1
        self.lastError = error
        for entry in batch.entries {
            guard let account = self.accounts[entry.key] else { continue }
            account.inFlight = false
            account.needsFull = true
        }
    }

    /// Every account must be written on the next call (a final flush on stop).
    func flushAllNow() {
        self.lastBatchNanos = nil
        for account in self.accounts.values where account.spent > account.syncedSpent {
            account.firstUnsyncedNanos = 0
            account.lastSpendNanos = 0
        }
    }

    var unsyncedSpends: Int {
        guard self.health != .local else { return 0 }
        return self.accounts.values.reduce(0) { $0 + max(0, $1.spent - $1.syncedSpent) }
    }

    /// What the worker reports to the router (`/readyz`, `/metrics`).
    func status() -> WorkerStatusMessage {
        WorkerStatusMessage(
            quotaHealth: self.health.rawValue, quotaAccounts: self.accounts.count, quotaUnsynced: self.unsyncedSpends,
            quotaBatches: self.batches, quotaFailures: self.failures, quotaLastSyncUnixMs: self.lastSyncUnixMs,
            quotaLastError: self.lastError)
    }

    /// Drops accounts whose window is over (or that sat unused) once Redis
    /// has everything they counted. Without Redis an open window is kept:
    /// this process (and its journal) is the only record.
    private func forgetFinished(now: UInt64, unixSeconds: Int64) {
        var gone: [String] = []
        for (key, account) in self.accounts where !account.inFlight {
            let ended = unixSeconds >= account.window.end
            let idle = now &- account.lastUseNanos >= self.settings.forgetAfterNanos
            let settled = self.health == .local || (account.spent <= account.syncedSpent && !account.needsFull)
            if (ended || (idle && self.health != .local)) && settled { gone.append(key) }
        }
        for key in gone {
            guard let account = self.accounts.removeValue(forKey: key) else { continue }
            account.retired = true
            if let slot = account.journalSlot { self.journal?.free(slot) }
        }
    }

    private func journalWrite(_ account: QuotaAccount) {
        guard let slot = account.journalSlot, let journal = self.journal else { return }
        journal.write(slot, spent: account.spent, granted: account.granted)
    }
}
