import Foundation
import Shared
import Testing

@testable import Worker

/// The slice/claim protocol of `QuotaLedger`, fed Redis replies by hand:
/// the arithmetic, the borrow bound, failure modes and what a failure keeps.
/// The script itself runs against a real redis-server in QuotaSharingTests.
@Suite("Quota ledger: slices, claims, borrowing, Redis failures")
struct QuotaLedgerTests {
    static let ms: UInt64 = 1_000_000
    let window = QuotaWindow(period: .day, containing: 1_767_225_600)

    func account(_ ledger: QuotaLedger, limit: Int = 500, mode: RedisFailureMode = .failOpen, now: UInt64 = 0) -> QuotaAccount {
        ledger.account(clientID: "acme", name: "day", window: self.window, limit: limit, failureMode: mode, now: now)
    }

    /// Answers a batch the way the script would for one holder alone with
    /// `othersGranted` granted elsewhere.
    func answer(_ ledger: QuotaLedger, _ batch: QuotaSyncBatch, othersGranted: Int = 0, holders: Int = 1, now: UInt64) {
        let replies: [QuotaSyncReply?] = batch.entries.map { entry in
            guard entry.want >= 0 else { return nil }
            let g = max(entry.granted, entry.spent)
            let grant = max(0, min(entry.want, entry.limit - othersGranted - g))
            return QuotaSyncReply(
                storedSpent: entry.spent, granted: g + grant, othersGranted: othersGranted, othersSpent: 0,
                holders: holders, newlyGranted: grant)
        }
        ledger.completed(batch, replies: replies, reconnected: false, now: now, unixMs: 0)
    }

    @Test func keyNamesTheClientAndTheWindowStart() throws {
        let ledger = QuotaLedger(shared: true)
        #expect(self.account(ledger).key == "portcullis:quota:{acme}:day:1767225600")
    }

    @Test func firstTouchBorrowsOnlyUpToTheCapUntilTheClaimReturns() throws {
        let ledger = QuotaLedger(shared: true)
        let account = self.account(ledger)
        // Cap: max(1% of 500, 5) split over the estimated 2 holders = 2.
        #expect(account.borrowCap(holdersEstimate: ledger.holdersEstimate) == 2)
        for _ in 0..<2 {
            #expect(ledger.room(account) == .room)
            ledger.spend(account, now: 0)
        }
        #expect(ledger.room(account) == .pending)
        let batch = ledger.nextBatch(now: 0, unixSeconds: self.window.start)
        let claim = try #require(batch)
        let entry = try #require(claim.entries.first)
        #expect(entry.spent == 2 && entry.granted == 0 && entry.want > 0)
        #expect(account.inFlight)
        self.answer(ledger, claim, now: 10 * Self.ms)
        #expect(account.known && !account.inFlight)
        // The first claim is a fair share of what was left: ceil(498 / 3).
        #expect(account.granted == 2 + 166)
        #expect(ledger.room(account) == .room)
    }

    @Test func batchesAreSpacedAndClaimsComeAtHalfTheSlice() throws {
        let ledger = QuotaLedger(shared: true)
        let account = self.account(ledger, limit: 100)
        ledger.spend(account, now: 0)
        let first = try #require(ledger.nextBatch(now: 0, unixSeconds: self.window.start))
        self.answer(ledger, first, now: 1 * Self.ms)
        let slice = account.granted - 1
        #expect(slice == 33)  // ceil(99 / 3)
        // Nothing due and too soon anyway.
        #expect(ledger.nextBatch(now: 50 * Self.ms, unixSeconds: self.window.start) == nil)
        for _ in 0..<(slice / 2) { ledger.spend(account, now: 200 * Self.ms) }
        #expect(ledger.nextBatch(now: 200 * Self.ms, unixSeconds: self.window.start) == nil)  // 17 left > 16
        ledger.spend(account, now: 200 * Self.ms)
        let claim = try #require(ledger.nextBatch(now: 200 * Self.ms, unixSeconds: self.window.start))
        #expect(claim.entries.first?.want ?? 0 > 0)
    }

    @Test func holdersTogetherNeverPassTheLimitBeyondTheirBorrowCaps() throws {
        // Three holders sharing 500 through a faithful model of the script.
        var fields: [String: (u: Int, g: Int)] = [:]
        let limit = 500
        let ledgers = (0..<3).map { _ in QuotaLedger(shared: true) }
        let accounts = ledgers.map { self.account($0, limit: limit) }
        var allowed = 0
        var now: UInt64 = 0
        for round in 0..<2000 {
            let h = round % 3
            if ledgers[h].room(accounts[h]) == .room {
                ledgers[h].spend(accounts[h], now: now)
                allowed += 1
            }
            now += 1 * Self.ms
            if round % 7 == 0 {
                for (i, ledger) in ledgers.enumerated() {
                    guard let batch = ledger.nextBatch(now: now, unixSeconds: self.window.start) else { continue }
                    let replies: [QuotaSyncReply?] = batch.entries.map { entry in
                        let mine = fields["h\(i)"] ?? (0, 0)
                        let u = max(mine.u, entry.spent)
                        if entry.want < 0 {
                            fields["h\(i)"] = (u, max(entry.granted, u))
                            return nil
                        }
                        var g = max(mine.g, entry.granted, u)
                        let others = fields.filter { $0.key != "h\(i)" }.reduce(0) { $0 + $1.value.g }
                        let grant = entry.want > 0 ? max(0, min(entry.want, limit - others - g)) : 0
                        g += grant
                        fields["h\(i)"] = (u, g)
                        return QuotaSyncReply(
                            storedSpent: u, granted: g, othersGranted: others, othersSpent: 0, holders: fields.count,
                            newlyGranted: grant)
                    }
                    ledger.completed(batch, replies: replies, reconnected: false, now: now, unixMs: 0)
                }
            }
        }
        // Bound: the sum of borrow caps (5 / 3 holders -> 1 each, 2 before the
        // first reply) and nobody is left short while requests keep coming.
        #expect(allowed <= limit + 6)
        #expect(allowed >= limit - 6)
        #expect(accounts.allSatisfy { ledgers[0].room($0) != .room || $0.spent < $0.granted })
    }

    @Test func exhaustedBudgetIsA429UntilTheWindowEnds() throws {
        let ledger = QuotaLedger(shared: true)
        let account = self.account(ledger, limit: 10)
        let batch = try #require(ledger.nextBatch(now: 0, unixSeconds: self.window.start))
        self.answer(ledger, batch, othersGranted: 10, holders: 2, now: 0)
        #expect(account.granted == 0)
        #expect(ledger.room(account) == .exhausted)
        // It asks again only after the recheck interval, and only because requests kept coming.
        #expect(ledger.nextBatch(now: 1_000 * Self.ms, unixSeconds: self.window.start)?.entries.isEmpty != false)
        let later = ledger.nextBatch(now: 6_000 * Self.ms, unixSeconds: self.window.start)
        #expect(later?.entries.first?.key == account.key)
    }

    @Test func redisDownFailOpenEnforcesOwnCountsAgainstTheLimit() throws {
        let ledger = QuotaLedger(shared: true)
        let account = self.account(ledger, limit: 10, mode: .failOpen)
        let batch = try #require(ledger.nextBatch(now: 0, unixSeconds: self.window.start))
        self.answer(ledger, batch, othersGranted: 4, holders: 2, now: 0)
        #expect(account.granted == 4)  // first claim: ceil(10 / 3), the share for 2 holders + 1
        ledger.failed(QuotaSyncBatch(entries: []), error: "connection refused", now: 200 * Self.ms)
        #expect(ledger.health == .down)
        var allowed = 0
        while ledger.room(account) == .room {
            ledger.spend(account, now: 300 * Self.ms)
            allowed += 1
        }
        // Own spends plus what others were granted stay within the limit.
        #expect(allowed == 6)
        #expect(ledger.room(account) == .exhausted)
        #expect(ledger.unsyncedSpends == 6)
    }

    @Test func redisDownFailClosedSpendsTheSliceThen503() throws {
        let ledger = QuotaLedger(shared: true)
        let account = self.account(ledger, limit: 100, mode: .failClosed)
        let batch = try #require(ledger.nextBatch(now: 0, unixSeconds: self.window.start))
        self.answer(ledger, batch, now: 0)
        let slice = account.granted
        #expect(slice > 0)
        ledger.failed(QuotaSyncBatch(entries: []), error: "timeout", now: 1)
        for _ in 0..<slice {
            #expect(ledger.room(account) == .room)
            ledger.spend(account, now: 2)
        }
        #expect(ledger.room(account) == .unavailable)
    }

    @Test func aFailedBatchKeepsEverySpendAndTheNextCallRereads() throws {
        let ledger = QuotaLedger(shared: true)
        let account = self.account(ledger, limit: 1000)
        let first = try #require(ledger.nextBatch(now: 0, unixSeconds: self.window.start))
        self.answer(ledger, first, now: 0)
        for _ in 0..<7 { ledger.spend(account, now: 1 * Self.ms) }
        ledger.failed(try #require(ledger.nextBatch(now: 2_000 * Self.ms, unixSeconds: self.window.start)), error: "reset", now: 2_000 * Self.ms)
        #expect(account.needsFull && !account.inFlight)
        #expect(ledger.unsyncedSpends == 7)
        // Down: the retry waits a second, then carries the absolute count.
        #expect(ledger.nextBatch(now: 2_500 * Self.ms, unixSeconds: self.window.start) == nil)
        let retry = try #require(ledger.nextBatch(now: 3_100 * Self.ms, unixSeconds: self.window.start))
        #expect(retry.entries.first?.spent == 7)
        #expect(retry.entries.first?.want ?? -1 >= 0)
        self.answer(ledger, retry, now: 3_200 * Self.ms)
        #expect(ledger.health == .up)
        #expect(ledger.unsyncedSpends == 0)
    }

    @Test func aReconnectRewritesEveryAccount() throws {
        let ledger = QuotaLedger(shared: true)
        let a = ledger.account(clientID: "a", name: "day", window: self.window, limit: 100, failureMode: .failOpen, now: 0)
        let b = ledger.account(clientID: "b", name: "day", window: self.window, limit: 100, failureMode: .failOpen, now: 0)
        self.answer(ledger, try #require(ledger.nextBatch(now: 0, unixSeconds: self.window.start)), now: 0)
        #expect(!a.needsFull && !b.needsFull)
        // A keepalive PING on a fresh connection: Redis may have restarted empty.
        let probe = try #require(ledger.nextBatch(now: 3_000 * Self.ms, unixSeconds: self.window.start))
        #expect(probe.entries.isEmpty)
        ledger.completed(probe, replies: [], reconnected: true, now: 3_000 * Self.ms, unixMs: 0)
        let rewrite = try #require(ledger.nextBatch(now: 3_200 * Self.ms, unixSeconds: self.window.start))
        #expect(Set(rewrite.entries.map(\.key)) == [a.key, b.key])
    }

    @Test func stoppingWritesSpendsAndHandsBackTheUnspentSlice() throws {
        let ledger = QuotaLedger(shared: true)
        let account = self.account(ledger, limit: 300)
        self.answer(ledger, try #require(ledger.nextBatch(now: 0, unixSeconds: self.window.start)), now: 0)
        for _ in 0..<5 { ledger.spend(account, now: 1) }
        ledger.stopping = true
        ledger.flushAllNow()
        let last = try #require(ledger.nextBatch(now: 2, unixSeconds: self.window.start))
        #expect(last.entries == [
            QuotaSyncEntry(key: account.key, limit: 300, spent: 5, granted: 5, want: -1, expireAt: self.window.end + 86_400)
        ])
        self.answer(ledger, last, now: 3)
        #expect(account.granted == 5)
        #expect(ledger.nextBatch(now: 500 * Self.ms, unixSeconds: self.window.start) == nil)
    }

    @Test func finishedWindowsLeaveOnceSynced() throws {
        let ledger = QuotaLedger(shared: true)
        let account = self.account(ledger, limit: 10)
        self.answer(ledger, try #require(ledger.nextBatch(now: 0, unixSeconds: self.window.start)), now: 0)
        ledger.spend(account, now: 1)
        // After the window: a final record-only flush, then the account goes.
        let final = try #require(ledger.nextBatch(now: 200 * Self.ms, unixSeconds: self.window.end))
        #expect(final.entries.first?.want == -1)
        self.answer(ledger, final, now: 201 * Self.ms)
        _ = ledger.nextBatch(now: 400 * Self.ms, unixSeconds: self.window.end)
        #expect(ledger.accountCount == 0)
        #expect(account.retired)
    }
}

@Suite("Quota spend journal")
struct SpendJournalTests {
    func path() -> String { NSTemporaryDirectory() + "pcl-journal-\(UUID().uuidString)" }

    @Test func spendsSurviveAReopenAndEndedWindowsDoNot() throws {
        let path = self.path()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let journal = try SpendJournal(path: path, capacity: 64, nowUnixSeconds: 100)
            let live = try #require(journal.allocate(key: "portcullis:quota:{a}:day:0", windowEnd: 1_000))
            journal.write(live, spent: 42, granted: 50)
            let ended = try #require(journal.allocate(key: "portcullis:quota:{b}:day:0", windowEnd: 150))
            journal.write(ended, spent: 7, granted: 7)
        }
        let reopened = try SpendJournal(path: path, capacity: 64, nowUnixSeconds: 200)
        #expect(reopened.restoredCount == 1)
        #expect(reopened.restored("portcullis:quota:{a}:day:0") == SpendJournal.Entry(spent: 42, granted: 50))
        #expect(reopened.restored("portcullis:quota:{b}:day:0") == nil)
        // The restored record is reused, not duplicated.
        let slot = reopened.allocate(key: "portcullis:quota:{a}:day:0", windowEnd: 1_000)
        #expect(slot != nil)
        #expect(reopened.restoredCount == 0)
    }

    @Test func aLedgerPicksUpWhereTheKilledProcessStopped() throws {
        let path = self.path()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let window = QuotaWindow(period: .day, containing: 1_767_225_600)
        do {
            let ledger = QuotaLedger(shared: false, journal: try SpendJournal(path: path, capacity: 64, nowUnixSeconds: window.start))
            let account = ledger.account(clientID: "c", name: "day", window: window, limit: 5, failureMode: .failOpen, now: 0)
            for _ in 0..<4 { ledger.spend(account, now: 1) }
        }
        let ledger = QuotaLedger(shared: false, journal: try SpendJournal(path: path, capacity: 64, nowUnixSeconds: window.start))
        let account = ledger.account(clientID: "c", name: "day", window: window, limit: 5, failureMode: .failOpen, now: 0)
        #expect(account.spent == 4)
        #expect(ledger.room(account) == .room)
        ledger.spend(account, now: 2)
        #expect(ledger.room(account) == .exhausted)
    }

    @Test func overlongKeysAndAFullJournalAreCountedNotFatal() throws {
        let path = self.path()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let journal = try SpendJournal(path: path, capacity: 2, nowUnixSeconds: 0)
        #expect(journal.allocate(key: String(repeating: "k", count: 300), windowEnd: 10) == nil)
        #expect(journal.allocate(key: "a", windowEnd: 10) != nil)
        #expect(journal.allocate(key: "b", windowEnd: 10) != nil)
        #expect(journal.allocate(key: "c", windowEnd: 10) == nil)
        #expect(journal.droppedKeys == 2)
    }
}
