import Shared
import Testing

@testable import Worker

@Suite("Token buckets, quota windows and rate-limit headers")
struct LimitsTests {
    static let second: UInt64 = 1_000_000_000

    @Test func bucketStartsFullAndDrainsToBurst() {
        var bucket = TokenBucket(limit: 10, burst: 3, windowSeconds: 1, now: 0)
        for _ in 0..<3 {
            #expect(bucket.hasToken)
            bucket.take()
        }
        #expect(!bucket.hasToken)
        #expect(bucket.remaining == 0)
    }

    @Test func bucketRefillsExactlyOneTokenPerInterval() {
        // 10/s: one token every 100 ms, no rounding drift over a long run.
        var bucket = TokenBucket(limit: 10, burst: 1, windowSeconds: 1, now: 0)
        bucket.take()
        var now: UInt64 = 0
        for _ in 0..<10_000 {
            now += 99_999_999
            bucket.refill(now: now)
            #expect(!bucket.hasToken)
            now += 1
            bucket.refill(now: now)
            #expect(bucket.hasToken)
            bucket.take()
        }
    }

    @Test func bucketNeverExceedsBurstAfterIdle() {
        var bucket = TokenBucket(limit: 5, burst: 2, windowSeconds: 60, now: 0)
        bucket.refill(now: 10_000 * Self.second)
        #expect(bucket.remaining == 2)
    }

    @Test func bucketIgnoresTimeGoingBackwards() {
        var bucket = TokenBucket(limit: 1, burst: 1, windowSeconds: 1, now: 5 * Self.second)
        bucket.take()
        bucket.refill(now: 1 * Self.second)
        #expect(!bucket.hasToken)
        bucket.refill(now: 6 * Self.second)
        #expect(bucket.hasToken)
    }

    @Test func bucketWaitTimesRoundUp() {
        // 100/hour: one token every 36 s.
        var bucket = TokenBucket(limit: 100, burst: 1, windowSeconds: 3600, now: 0)
        bucket.take()
        #expect(bucket.secondsUntilToken == 36)
        bucket.refill(now: 35 * Self.second + 1)
        #expect(bucket.secondsUntilToken == 1)
        #expect(bucket.secondsUntilFull == 1)
    }

    @Test func hugeBurstsDoNotOverflow() {
        var bucket = TokenBucket(limit: 10_000_000, burst: 10_000_000, windowSeconds: 3600, now: 0)
        bucket.take()
        #expect(bucket.remaining == 9_999_999)
        bucket.refill(now: UInt64.max / 2)
        #expect(bucket.remaining == 10_000_000)
    }

    @Test func quotaWindowsAreUTCCalendarPeriods() {
        // 2026-03-18T15:04:05Z is a Wednesday.
        let t: Int64 = 1_773_846_245
        let day = QuotaWindow(period: .day, containing: t)
        #expect(day.start == 1_773_792_000)
        #expect(day.lengthSeconds == 86_400)
        let week = QuotaWindow(period: .week, containing: t)
        #expect(week.start == 1_773_619_200)  // Monday 2026-03-16
        #expect(week.lengthSeconds == 7 * 86_400)
        let month = QuotaWindow(period: .month, containing: t)
        #expect(month.start == 1_772_323_200)  // 2026-03-01
        #expect(month.lengthSeconds == 31 * 86_400)
        // February of a leap year, and a year boundary.
        #expect(QuotaWindow(period: .month, containing: 1_709_251_199).lengthSeconds == 29 * 86_400)  // 2024-02-29T23:59:59Z
        let december = QuotaWindow(period: .month, containing: 1_767_225_599)  // 2025-12-31T23:59:59Z
        #expect(december.end == 1_767_225_600)
    }

    @Test func localQuotaIsExactAndRollsAtTheWindowEdge() {
        let policy = CompiledPolicy(PolicyConfig(id: "p", quotas: [QuotaConfig(limit: 2, per: .day)]))
        let limiter = PolicyLimiter()
        let midnight: Int64 = 1_767_225_600
        var time = DecisionTime(monotonicNanos: 1, unixSeconds: midnight - 10)
        #expect(limiter.check(clientID: "c", policy: policy, time: time).outcome == .allowed)
        #expect(limiter.check(clientID: "c", policy: policy, time: time).outcome == .allowed)
        let denied = limiter.check(clientID: "c", policy: policy, time: time)
        #expect(denied.outcome == .quotaExceeded(retryAfter: 10))
        #expect(denied.rateLimitHeader?.description == "\"day\";r=0;t=10")
        time.unixSeconds = midnight - 1
        #expect(limiter.check(clientID: "c", policy: policy, time: time).outcome == .quotaExceeded(retryAfter: 1))
        time.unixSeconds = midnight
        let fresh = limiter.check(clientID: "c", policy: policy, time: time)
        #expect(fresh.outcome == .allowed)
        #expect(fresh.rateLimitHeader?.description == "\"day\";r=1;t=86400")
    }

    @Test func quotaUsageSurvivesAPolicyReshape() {
        // Changing a rate limit drops the client's buckets, not its quota count.
        let limiter = PolicyLimiter()
        let time = DecisionTime(monotonicNanos: 1, unixSeconds: 1_767_225_600)
        let first = CompiledPolicy(PolicyConfig(id: "p", quotas: [QuotaConfig(limit: 2, per: .day)]))
        #expect(limiter.check(clientID: "c", policy: first, time: time).outcome == .allowed)
        let second = CompiledPolicy(
            PolicyConfig(id: "p", rateLimits: [RateLimitConfig(limit: 9, per: .second)], quotas: [QuotaConfig(limit: 2, per: .day)]))
        limiter.retain { _, fingerprint in fingerprint == second.fingerprint }
        #expect(limiter.check(clientID: "c", policy: second, time: time).outcome == .allowed)
        #expect(limiter.check(clientID: "c", policy: second, time: time).outcome == .quotaExceeded(retryAfter: 86_400))
    }

    @Test func headersNameRepeatedWindowsAndPickTheTightest() {
        let policy = CompiledPolicy(
            PolicyConfig(
                id: "p",
                rateLimits: [
                    RateLimitConfig(limit: 10, per: .second, burst: 20),
                    RateLimitConfig(limit: 3, per: .minute),
                    RateLimitConfig(limit: 1000, per: .minute),
                ],
                quotas: [QuotaConfig(limit: 100, per: .day)]))
        #expect(policy.limits.map(\.name) == ["second", "minute", "minute-2"])
        let limiter = PolicyLimiter()
        let time = DecisionTime(monotonicNanos: 0, unixSeconds: 1_767_225_600)
        let verdict = limiter.check(clientID: "c", policy: policy, time: time)
        #expect(verdict.outcome == .allowed)
        #expect(verdict.policyHeader == "\"second\";q=10;w=1, \"minute\";q=3;w=60, \"minute-2\";q=1000;w=60, \"day\";q=100;w=86400")
        // minute has 2 left, fewer than any other.
        #expect(verdict.rateLimitHeader?.description == "\"minute\";r=2;t=20")
    }

    @Test func tiesGoToTheShortestWindow() {
        let policy = CompiledPolicy(
            PolicyConfig(id: "p", rateLimits: [RateLimitConfig(limit: 2, per: .hour), RateLimitConfig(limit: 2, per: .second)], quotas: []))
        let verdict = PolicyLimiter().check(clientID: "c", policy: policy, time: DecisionTime(monotonicNanos: 0, unixSeconds: 0))
        #expect(verdict.rateLimitHeader?.description == "\"second\";r=1;t=1")
    }

    @Test func clientsHaveIndependentBuckets() {
        let policy = CompiledPolicy(PolicyConfig(id: "p", rateLimits: [RateLimitConfig(limit: 1, per: .second)], quotas: []))
        let limiter = PolicyLimiter()
        let time = DecisionTime(monotonicNanos: 0, unixSeconds: 0)
        #expect(limiter.check(clientID: "a", policy: policy, time: time).outcome == .allowed)
        #expect(limiter.check(clientID: "a", policy: policy, time: time).outcome == .rateLimited(retryAfter: 1))
        #expect(limiter.check(clientID: "b", policy: policy, time: time).outcome == .allowed)
        #expect(limiter.trackedClients == 2)
    }

    @Test func aClientsCachedStateFollowsTheLimiter() {
        let policy = CompiledPolicy(PolicyConfig(id: "p", rateLimits: [RateLimitConfig(limit: 1, per: .second)], quotas: []))
        let limiter = PolicyLimiter()
        let time = DecisionTime(monotonicNanos: 0, unixSeconds: 0)
        let client = CompiledClient(id: "a", active: true, collections: [], policy: policy)
        #expect(limiter.check(client: client, policy: policy, time: time).outcome == .allowed)
        #expect(client.limitState != nil)
        // The by-id path and the cached path share one bucket.
        #expect(limiter.check(clientID: "a", policy: policy, time: time).outcome == .rateLimited(retryAfter: 1))
        #expect(limiter.check(client: client, policy: policy, time: time).outcome == .rateLimited(retryAfter: 1))
        // A reload that drops the state: the cache on the client is not
        // trusted any more, so the client starts full, as by id.
        limiter.retain { _, _ in false }
        #expect(limiter.trackedClients == 0)
        #expect(limiter.check(client: client, policy: policy, time: time).outcome == .allowed)
        #expect(limiter.trackedClients == 1)
        // A reload that keeps it: the same bucket, still empty.
        limiter.retain { _, _ in true }
        #expect(limiter.check(client: client, policy: policy, time: time).outcome == .rateLimited(retryAfter: 1))
        // A state replaced by id (another shape) is not used from the cache.
        let other = CompiledPolicy(PolicyConfig(id: "p", rateLimits: [RateLimitConfig(limit: 5, per: .second)], quotas: []))
        #expect(limiter.check(clientID: "a", policy: other, time: time).outcome == .allowed)
        #expect(limiter.check(client: client, policy: policy, time: time).outcome == .allowed, "a fresh state for the old shape")
    }
}

@Suite("Route table")
struct RouteTableTests {
    let table = RouteTable([
        CollectionRoutes(id: "orders", routes: [RouteConfig(pathPrefix: "/orders/")]),
        CollectionRoutes(id: "orders-v2", routes: [RouteConfig(pathPrefix: "/orders/v2", stripPrefix: true)]),
        CollectionRoutes(id: "root", routes: [RouteConfig(pathPrefix: "/api")]),
    ])

    @Test(arguments: [
        ("/orders", "orders"), ("/orders/", "orders"), ("/orders/1", "orders"), ("/orders?x=1", "orders"),
        ("/orders/v2", "orders-v2"), ("/orders/v2/9?q", "orders-v2"), ("/orders/v20", "orders"),
        ("/api/x/y", "root"),
    ])
    func longestPrefixOnSegmentBoundaries(path: String, collection: String) {
        #expect(table.match(path)?.collectionID == collection)
    }

    @Test(arguments: ["/", "/ordersx", "/order", "/apix", "?/orders", "/Orders/1"])
    func unmatchedPaths(path: String) {
        #expect(table.match(path) == nil)
    }

    @Test func scanningAFewPrefixesAnswersAsTheDictionaryWalkDoes() {
        let routes = [
            CollectionRoutes(id: "root", routes: [RouteConfig(pathPrefix: "/")]),
            CollectionRoutes(id: "orders", routes: [RouteConfig(pathPrefix: "/orders/")]),
            CollectionRoutes(id: "orders-v2", routes: [RouteConfig(pathPrefix: "/orders/v2", stripPrefix: true)]),
            CollectionRoutes(id: "deep", routes: [RouteConfig(pathPrefix: "/a/b/c")]),
        ]
        let few = RouteTable(routes)
        let paths = [
            "/", "//", "/x", "/orders", "/orders/", "/orders//", "/orders/1", "/orders?x=1", "/orders#f", "/orders/v2",
            "/orders/v2/", "/orders/v2/9?q", "/orders/v20", "/ordersx", "/a/b", "/a/b/c", "/a/b/c/d", "/a/b/cd", "?/orders", "",
            "/ü/ñ", "//orders",
        ]
        for path in paths {
            #expect(few.match(path) == few.walk(path), "\(path)")
        }
        let withoutRoot = RouteTable(Array(routes.dropFirst()))
        for path in paths {
            #expect(withoutRoot.match(path) == withoutRoot.walk(path), "\(path)")
        }
        #expect(few.match("/zzz")?.collectionID == "root")
        #expect(withoutRoot.match("/zzz") == nil)
    }

    @Test func manyRoutesAreLookedUpByWalking() {
        let routes = (0..<(RouteTable.scanLimit + 4)).map { CollectionRoutes(id: "c\($0)", routes: [RouteConfig(pathPrefix: "/p\($0)")]) }
        let table = RouteTable(routes)
        #expect(table.match("/p7/x")?.collectionID == "c7")
        #expect(table.match("/p7x") == nil)
        #expect(table.match("/p19?q")?.prefixBytes == 4)
    }

    @Test func stripPrefixReportsTheMatchedBytes() {
        let match = table.match("/orders/v2/items")
        #expect(match?.stripPrefix == true)
        #expect(match?.prefixBytes == 10)
    }
}
