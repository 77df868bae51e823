import Foundation
import Shared
import Testing

@testable import Worker

/// Every row of SPEC §2 for the `token` and `none` auth types, in order,
/// through the same engine the worker process runs, with no sockets.
@Suite("Decision pipeline")
struct PipelineTests {
    let clock = ManualClock()

    private func decide(_ request: DecisionRequest) throws -> DecisionResponse {
        try Fixture.engine(clock: self.clock).decide(request)
    }

    private func expectDenied(
        _ response: DecisionResponse, _ status: Int, _ code: ErrorCode, _ reason: ReasonCode,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(response.outcome == .deny, sourceLocation: sourceLocation)
        #expect(response.status == status, sourceLocation: sourceLocation)
        #expect(response.errorCode == code.rawValue, sourceLocation: sourceLocation)
        #expect(response.reason == reason.rawValue, sourceLocation: sourceLocation)
    }

    @Test func allowsAValidTokenRequest() throws {
        let response = try decide(Fixture.request())
        #expect(response.outcome == .allow)
        #expect(response.status == 200)
        #expect(response.collectionID == "orders")
        #expect(response.authType == "token")
        #expect(response.policyID == "tight")
        #expect(response.stripPrefixBytes == 0)
        #expect(response.rateLimitPolicy == "\"second\";q=2;w=1, \"minute\";q=5;w=60")
        #expect(response.rateLimit?.description == "\"second\";r=1;t=1")
    }

    @Test func row1MissingIdentity() throws {
        expectDenied(try decide(Fixture.request(client: "")), 401, .unauthorized, .missingIdentity)
        expectDenied(try decide(Fixture.request(profile: "")), 401, .unauthorized, .missingIdentity)
    }

    @Test func row2UnknownClientOrProfile() throws {
        expectDenied(try decide(Fixture.request(client: "nobody")), 401, .unauthorized, .unknownClient)
        expectDenied(try decide(Fixture.request(profile: "nothing")), 401, .unauthorized, .unknownProfile)
    }

    @Test func row3ProfileOfAnotherClient() throws {
        expectDenied(try decide(Fixture.request(profile: "globex-token")), 403, .forbidden, .clientProfileMismatch)
    }

    @Test func row3HoldsForProfilesOwnedByAnotherWorker() throws {
        // acme on worker 0, globex on worker 1: worker 0 still knows that
        // globex-token exists and is not acme's.
        let config = try ConfigLoader.parse(yaml: Fixture.yaml)
        let snapshots = WorkerSnapshot.partition(config, version: 1, workerCount: 2, owner: { $0 == "globex" ? 1 : 0 })
        let engine = WorkerEngine(workerIndex: 0, clock: clock)
        try engine.apply(snapshots[0])
        expectDenied(engine.decide(Fixture.request(profile: "globex-token")), 403, .forbidden, .clientProfileMismatch)
        expectDenied(engine.decide(Fixture.request(profile: "missing")), 401, .unauthorized, .unknownProfile)
    }

    @Test func row4InactiveClientOrProfile() throws {
        expectDenied(try decide(Fixture.request(client: "dormant", profile: "dormant-open")), 403, .forbidden, .inactiveClient)
        expectDenied(try decide(Fixture.request(profile: "acme-off")), 403, .forbidden, .inactiveProfile)
    }

    @Test(arguments: ["10.0.0.1", "10.0.0.255", "192.168.1.100", "2001:db8::1", "2001:db8:ffff::9", "::ffff:10.0.0.9"])
    func row5AddressesInsideTheAllowlist(ip: String) throws {
        #expect(try decide(Fixture.request(ip: ip)).outcome == .allow)
    }

    @Test(arguments: ["10.0.1.1", "192.168.1.101", "2001:db9::1", "127.0.0.1", "::1"])
    func row5AddressesOutsideTheAllowlist(ip: String) throws {
        expectDenied(try decide(Fixture.request(ip: ip)), 403, .ipNotAllowed, .ipNotAllowed)
    }

    @Test func row5UnknownSourceMatchesNoAllowlist() throws {
        expectDenied(try decide(Fixture.request(ip: nil)), 403, .ipNotAllowed, .ipNotAllowed)
    }

    @Test(arguments: [
        "", "\t", "Bearer", "Bearer ", "Bearer \t ", "Bearer    ", "Bearers \(Fixture.token)", "Bear \(Fixture.token)",
        "Basic dXNlcjpwYXNz", "Token \(Fixture.token)", "Bearer\(Fixture.token)", "Béarer \(Fixture.token)",
    ])
    func row6MissingCredential(authorization: String) throws {
        expectDenied(try decide(Fixture.request(authorization: authorization)), 401, .unauthorized, .missingCredential)
    }

    @Test(arguments: ["Bearer pcl_wrong", "Bearer \(Fixture.token)x", "Bearer \(Fixture.token.dropLast())", "Bearer \(Fixture.token.uppercased())"])
    func row6InvalidToken(authorization: String) throws {
        expectDenied(try decide(Fixture.request(authorization: authorization)), 401, .invalidToken, .tokenInvalid)
    }

    @Test(arguments: ["bearer \(Fixture.token)", "BEARER \(Fixture.token)", "Bearer \t \(Fixture.token)  ", " \tBeArEr\t\(Fixture.token)\t"])
    func row6SchemeIsCaseInsensitiveAndWhitespaceTolerant(authorization: String) throws {
        #expect(try decide(Fixture.request(authorization: authorization)).outcome == .allow)
    }

    @Test func row6NoneAuthNeedsNoCredential() throws {
        let response = try decide(Fixture.request(profile: "acme-open", ip: nil, authorization: ""))
        #expect(response.outcome == .allow)
        #expect(response.authType == "none")
    }

    @Test func row7MethodNotAllowedListsTheProfilesMethods() throws {
        let response = try decide(Fixture.request(method: "DELETE"))
        expectDenied(response, 405, .methodNotAllowed, .methodNotAllowed)
        #expect(response.allow == "GET, POST")
        // A profile without allowed_methods takes any method.
        #expect(try decide(Fixture.request(profile: "acme-open", method: "DELETE", authorization: "")).outcome == .allow)
    }

    @Test func row8NoRoute() throws {
        expectDenied(try decide(Fixture.request(path: "/nowhere")), 404, .notFound, .noRoute)
        // Prefixes match on segment boundaries only.
        expectDenied(try decide(Fixture.request(path: "/ordersX")), 404, .notFound, .noRoute)
    }

    @Test func row8CollectionDenied() throws {
        let response = try decide(Fixture.request(path: "/billing/invoices"))
        expectDenied(response, 403, .forbidden, .collectionDenied)
        #expect(response.collectionID == "billing")
    }

    @Test func row8StripPrefixReportsTheBytesToStrip() throws {
        let response = try decide(Fixture.request(path: "/v2/orders/7?x=1"))
        #expect(response.outcome == .allow)
        #expect(response.stripPrefixBytes == "/v2/orders".utf8.count)
    }

    @Test func row9RateLimitThenRefill() throws {
        let engine = try Fixture.engine(clock: clock)
        #expect(engine.decide(Fixture.request()).outcome == .allow)
        #expect(engine.decide(Fixture.request()).outcome == .allow)
        let limited = engine.decide(Fixture.request())
        expectDenied(limited, 429, .rateLimitExceeded, .rateLimit)
        #expect(limited.retryAfterSeconds == 1)
        #expect(limited.rateLimit?.description == "\"second\";r=0;t=1")
        // One token flows back every 500 ms at 2/s.
        clock.advance(nanos: 499_999_999)
        expectDenied(engine.decide(Fixture.request()), 429, .rateLimitExceeded, .rateLimit)
        clock.advance(nanos: 1)
        #expect(engine.decide(Fixture.request()).outcome == .allow)
    }

    @Test func row9RejectedRequestsConsumeNothing() throws {
        let engine = try Fixture.engine(clock: clock)
        // 5/minute: five allowed across three seconds, hammering in between.
        var allowed = 0
        for _ in 0..<3 {
            for _ in 0..<50 where engine.decide(Fixture.request()).outcome == .allow { allowed += 1 }
            clock.advance(seconds: 1)
        }
        #expect(allowed == 5)
        let limited = engine.decide(Fixture.request())
        expectDenied(limited, 429, .rateLimitExceeded, .rateLimit)
        // The minute bucket refills one token every 12 s and has been
        // refilling since t=0; had the rejected calls counted, the wait
        // would exceed one refill interval.
        #expect(limited.retryAfterSeconds > 0 && limited.retryAfterSeconds <= 12)
        clock.advance(seconds: limited.retryAfterSeconds)
        #expect(engine.decide(Fixture.request()).outcome == .allow)
    }

    @Test func row9QuotaExceededUntilTheNextUTCDay() throws {
        let engine = try Fixture.engine(clock: clock)
        clock.advance(seconds: 86_400 - 100)  // 100 s before midnight UTC
        for _ in 0..<3 {
            #expect(engine.decide(Fixture.request(client: "globex", profile: "globex-token", ip: nil)).outcome == .allow)
        }
        let denied = engine.decide(Fixture.request(client: "globex", profile: "globex-token", ip: nil))
        expectDenied(denied, 429, .quotaExceeded, .quota)
        #expect(denied.retryAfterSeconds == 100)
        #expect(denied.rateLimitPolicy == "\"day\";q=3;w=86400")
        #expect(denied.rateLimit?.description == "\"day\";r=0;t=100")
        clock.advance(seconds: 100)
        #expect(engine.decide(Fixture.request(client: "globex", profile: "globex-token", ip: nil)).outcome == .allow)
    }

    @Test func checksRunInSpecOrder() throws {
        // Wrong everything: the earliest failing check answers.
        let bad = Fixture.request(method: "DELETE", path: "/nowhere", ip: "1.2.3.4", authorization: "Bearer nope")
        expectDenied(try decide(bad), 403, .ipNotAllowed, .ipNotAllowed)
        let allowedIP = Fixture.request(method: "DELETE", path: "/nowhere", ip: "10.0.0.1", authorization: "Bearer nope")
        expectDenied(try decide(allowedIP), 401, .invalidToken, .tokenInvalid)
        let goodToken = Fixture.request(method: "DELETE", path: "/nowhere", ip: "10.0.0.1")
        expectDenied(try decide(goodToken), 405, .methodNotAllowed, .methodNotAllowed)
        let goodMethod = Fixture.request(method: "GET", path: "/nowhere", ip: "10.0.0.1")
        expectDenied(try decide(goodMethod), 404, .notFound, .noRoute)
    }

    @Test func deniedRequestsBeforeLimitsDoNotTouchBuckets() throws {
        let engine = try Fixture.engine(clock: clock)
        for _ in 0..<20 { _ = engine.decide(Fixture.request(authorization: "Bearer wrong")) }
        #expect(engine.decide(Fixture.request()).outcome == .allow)
        #expect(engine.decide(Fixture.request()).outcome == .allow)
    }

    @Test func workerWithoutConfigAnswersUnavailable() {
        let engine = WorkerEngine(workerIndex: 0, clock: clock)
        let response = engine.decide(Fixture.request())
        #expect(response.outcome == .unavailable)
        #expect(response.status == 503)
        #expect(response.errorCode == ErrorCode.workerUnavailable.rawValue)
    }

    @Test func reloadKeepsBucketsWhilePolicyKeepsItsShape() throws {
        let engine = try Fixture.engine(clock: clock)
        #expect(engine.decide(Fixture.request()).outcome == .allow)
        #expect(engine.decide(Fixture.request()).outcome == .allow)
        let config = try ConfigLoader.parse(yaml: Fixture.yaml)
        try engine.apply(WorkerSnapshot.partition(config, version: 2, workerCount: 1, owner: { _ in 0 })[0])
        expectDenied(engine.decide(Fixture.request()), 429, .rateLimitExceeded, .rateLimit)

        // A new limit shape starts fresh buckets.
        let changed = Fixture.yaml.replacingOccurrences(of: "{ limit: 2, per: second }", with: "{ limit: 3, per: second }")
        try engine.apply(WorkerSnapshot.partition(try ConfigLoader.parse(yaml: changed), version: 3, workerCount: 1, owner: { _ in 0 })[0])
        #expect(engine.decide(Fixture.request()).outcome == .allow)
    }
}
