import Foundation
import Shared
import Testing

@testable import Worker

/// Check 6 for jwt, oidc and mtls through the worker's engine, without
/// sockets: the attack catalogue of SPEC §3/§9 with an injected clock.
@Suite("Auth: jwt, oidc, mtls")
struct AuthTests {
    static let secret = "s3cret-for-hs-tests-that-is-long-enough"
    static let issuer = "http://127.0.0.1:9/realms/acme"
    static let source = OIDCKeySource.id(issuer: issuer, jwksURI: nil)
    static let rsa = try! AsymmetricKey.generate(.rsa)
    static let ec = try! AsymmetricKey.generate(.ec(.p256))
    static let fingerprint = String(repeating: "ab", count: 32)

    static let yaml = """
        server: { listen: "127.0.0.1:8080", decision_log: "off" }
        collections:
          - id: api
            upstream: { url: "http://127.0.0.1:9000" }
            routes: [ { path_prefix: /api } ]
        clients:
          - id: acme
            collections: [api]
            profiles:
              - id: hs
                auth: { type: jwt, secret: "$JWT_SECRET", leeway_s: 30, max_ttl_s: 3600, required_claims: { tenant_id: "t-1" } }
              - id: hs-any
                auth: { type: jwt, secret: "$JWT_SECRET", algorithms: [HS256, HS512], require_sub_match: false }
              - id: sso
                auth:
                  type: oidc
                  issuer: "\(issuer)"
                  audience: portcullis
                  algorithms: [RS256, PS256, ES256]
                  roles_claim: realm_access.roles
                  required_roles: [api-user]
              - id: sso-plain
                auth: { type: oidc, issuer: "\(issuer)", audience: portcullis }
              - id: cert
                auth: { type: mtls, subject: { cn: acme-mobile, ou: partner-cert } }
              - id: cert-fp
                auth: { type: mtls, fingerprint_sha256: "\(fingerprint.uppercased())" }
        """

    let clock = ManualClock()
    var now: Int64 { self.clock.time.unixSeconds }

    func engine() throws -> WorkerEngine {
        let config = try ConfigLoader.parse(yaml: Self.yaml)
        let engine = WorkerEngine(
            workerIndex: 0, clock: self.clock, environment: ["JWT_SECRET": Self.secret, "JWT_SECRET_NEXT": Self.secret + "-rotated"])
        try engine.apply(WorkerSnapshot.partition(config, version: 1, workerCount: 1, owner: { _ in 0 })[0])
        return engine
    }

    /// Puts `yaml` in force as a new whole share, as a config push does.
    func push(_ yaml: String, to engine: WorkerEngine, version: UInt64) throws {
        try engine.apply(WorkerSnapshot.partition(try ConfigLoader.parse(yaml: yaml), version: version, workerCount: 1, owner: { _ in 0 })[0])
    }

    func keys(_ engine: WorkerEngine, attemptedAt: Int64? = nil, version: UInt64 = 1, kids: [(AsymmetricKey, String, JWSAlgorithm)]? = nil) {
        let entries = (kids ?? [(Self.rsa, "rsa-1", .rs256), (Self.ec, "ec-1", .es256)]).map { $0.0.publicJWK(kid: $0.1, alg: $0.2) }
        let json = "{\"keys\":[\(entries.joined(separator: ","))]}"
        let set = engine.applyKeys(
            KeySetMessage(source: Self.source, version: version, jwksJSON: Array(json.utf8), attemptedUnixMs: (attemptedAt ?? self.now) * 1000))
        #expect(set.skipped.isEmpty, "\(set.skipped) in \(json)")
    }

    static func request(_ profile: String, bearer: String? = nil, subject: String = "", fingerprint: String = "") -> DecisionRequest {
        DecisionRequest(
            clientID: "acme", profileID: profile, method: "GET", path: "/api/x",
            authorization: bearer.map { "Bearer \($0)" } ?? "", certSubject: subject, certFingerprint: fingerprint)
    }

    func hs(_ claims: [String: Any], alg: JWSAlgorithm = .hs256, header: [String: Any] = [:], secret: String = AuthTests.secret) -> String {
        var head: [String: Any] = ["alg": alg.rawValue, "typ": "JWT"]
        head.merge(header) { $1 }
        return JWSMinter.hmac(alg, secret: secret, headerJSON: Self.json(head), claimsJSON: Self.json(claims))
    }

    func signed(_ claims: [String: Any], key: AsymmetricKey = AuthTests.rsa, alg: JWSAlgorithm = .rs256, kid: String? = "rsa-1", header: [String: Any] = [:]) throws -> String {
        var head: [String: Any] = ["alg": alg.rawValue]
        if let kid { head["kid"] = kid }
        head.merge(header) { $1 }
        return try JWSMinter.token(headerJSON: Self.json(head), claimsJSON: Self.json(claims)) { try key.sign(alg, message: $0) }
    }

    static func json(_ object: [String: Any]) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    var hsClaims: [String: Any] { ["sub": "acme", "iat": now, "exp": now + 600, "tenant_id": "t-1"] }
    var idClaims: [String: Any] {
        ["iss": Self.issuer, "aud": ["portcullis", "other"], "sub": "user-1", "iat": now, "exp": now + 600, "realm_access": ["roles": ["api-user", "x"]]]
    }

    func expect(
        _ response: DecisionResponse, _ status: Int, _ reason: ReasonCode, _ code: ErrorCode? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(response.status == status, "\(response.reason): \(response.message)", sourceLocation: sourceLocation)
        #expect(response.reason == reason.rawValue, "\(response.message)", sourceLocation: sourceLocation)
        if let code { #expect(response.errorCode == code.rawValue, sourceLocation: sourceLocation) }
    }

    // MARK: jwt

    @Test func jwtValidTokenIsAllowedAndCached() throws {
        let engine = try engine()
        let token = hs(hsClaims)
        expect(engine.decide(Self.request("hs", bearer: token)), 200, .allowed)
        let misses = engine.auth.cache.misses
        expect(engine.decide(Self.request("hs", bearer: token)), 200, .allowed)
        #expect(engine.auth.cache.hits == 1 && engine.auth.cache.misses == misses)
        // The cache is per profile: the same token proves nothing elsewhere.
        expect(engine.decide(Self.request("sso", bearer: token)), 401, .algorithmNotAllowed, .invalidToken)
    }

    @Test func configPushesKeepCachedTokensUnlessTheirRulesChanged() throws {
        let engine = try engine()
        let token = hs(hsClaims)
        expect(engine.decide(Self.request("hs", bearer: token)), 200, .allowed)
        // A push that leaves the profile's auth alone (here: a new client
        // and a new policy limit elsewhere) keeps the verification.
        let busier = Self.yaml + """

              - id: other
                collections: [api]
                profiles:
                  - id: other-open
                    auth: { type: none }
            """
        try push(busier, to: engine, version: 2)
        expect(engine.decide(Self.request("hs", bearer: token)), 200, .allowed)
        #expect(engine.auth.cache.hits == 1)
        // A rotated secret: the token signed with the old one is verified
        // again, and fails, although it is still in the cache.
        let rotated = Self.yaml.replacingOccurrences(
            of: "{ type: jwt, secret: \"$JWT_SECRET\", leeway_s: 30", with: "{ type: jwt, secret: \"$JWT_SECRET_NEXT\", leeway_s: 30")
        #expect(rotated != Self.yaml)
        try push(rotated, to: engine, version: 3)
        expect(engine.decide(Self.request("hs", bearer: token)), 401, .badSignature, .invalidToken)
        #expect(engine.auth.cache.hits == 1)
        expect(engine.decide(Self.request("hs", bearer: hs(hsClaims, secret: Self.secret + "-rotated"))), 200, .allowed)
        // A stricter claim rule: the cached token is checked against it.
        try push(Self.yaml, to: engine, version: 4)
        expect(engine.decide(Self.request("hs", bearer: token)), 200, .allowed)
        try push(Self.yaml.replacingOccurrences(of: "tenant_id: \"t-1\"", with: "tenant_id: \"t-2\""), to: engine, version: 5)
        expect(engine.decide(Self.request("hs", bearer: token)), 401, .claimMismatch, .invalidToken)
    }

    @Test func jwtTimeClaims() throws {
        let engine = try engine()
        var claims = hsClaims
        claims["exp"] = now - 10  // expired, but within the 30 s leeway
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 200, .allowed)
        claims["exp"] = now - 31
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 401, .jwtExpired, .invalidToken)
        claims = hsClaims
        claims["nbf"] = now + 60
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 401, .jwtNotYetValid)
        claims["nbf"] = now + 20  // within leeway
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 200, .allowed)
        claims = hsClaims
        claims["iat"] = now + 120
        claims["exp"] = now + 600
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 401, .iatInFuture)
        claims = hsClaims
        claims["exp"] = now + 7200  // max_ttl_s 3600
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 401, .lifetimeTooLong)
        claims = hsClaims
        claims.removeValue(forKey: "iat")  // required with max_ttl_s
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 401, .missingClaim)
        claims = hsClaims
        claims.removeValue(forKey: "exp")
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 401, .missingClaim)
        claims["exp"] = "tomorrow"
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 401, .tokenMalformed)
    }

    @Test func jwtSignatureSubjectAndClaims() throws {
        let engine = try engine()
        expect(engine.decide(Self.request("hs", bearer: hs(hsClaims, secret: "another-secret"))), 401, .badSignature)
        var claims = hsClaims
        claims["sub"] = "globex"
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 401, .subMismatch)
        // hs-any does not match sub.
        expect(engine.decide(Self.request("hs-any", bearer: hs(claims))), 200, .allowed)
        claims = hsClaims
        claims["tenant_id"] = "t-2"
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 401, .claimMismatch)
        claims.removeValue(forKey: "tenant_id")
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 401, .missingClaim)
        claims = hsClaims
        claims.removeValue(forKey: "sub")
        expect(engine.decide(Self.request("hs", bearer: hs(claims))), 401, .missingClaim)
    }

    @Test func jwtAlgorithmAllowList() throws {
        let engine = try engine()
        // HS512 only where listed.
        expect(engine.decide(Self.request("hs", bearer: hs(hsClaims, alg: .hs512))), 401, .algorithmNotAllowed)
        var claims = hsClaims
        claims["sub"] = "acme"
        expect(engine.decide(Self.request("hs-any", bearer: hs(claims, alg: .hs512))), 200, .allowed)
        // alg none, with and without a signature.
        let none = Base64.encodeURL(Array("{\"alg\":\"none\"}".utf8)) + "." + Base64.encodeURL(Array(Self.json(hsClaims).utf8))
        expect(engine.decide(Self.request("hs", bearer: none + ".")), 401, .tokenMalformed)
        expect(engine.decide(Self.request("hs", bearer: none + ".AAAA")), 401, .algorithmNotAllowed)
        let noneUpper = Base64.encodeURL(Array("{\"alg\":\"NONE\"}".utf8)) + "." + Base64.encodeURL(Array(Self.json(hsClaims).utf8)) + ".AAAA"
        expect(engine.decide(Self.request("hs", bearer: noneUpper)), 401, .algorithmNotAllowed)
        // typ other than JWT.
        expect(engine.decide(Self.request("hs", bearer: hs(hsClaims, header: ["typ": "at+jwt"]))), 401, .tokenMalformed)
        // RS256 offered to an HS profile.
        expect(engine.decide(Self.request("hs", bearer: try signed(hsClaims))), 401, .algorithmNotAllowed)
    }

    @Test func garbageTokensAreAlways401NeverA5xx() throws {
        let engine = try engine()
        let good = hs(hsClaims)
        let parts = good.split(separator: ".").map(String.init)
        let cases: [String] = [
            "garbage", "a.b", "a.b.c.d", "..", "\(parts[0]).\(parts[1])", "\(parts[0])=.\(parts[1]).\(parts[2])",
            "\(parts[0]).\(parts[1]).\(parts[2])==", String(good.dropLast(3)), "\(parts[0]).\(parts[1]).",
            Base64.encodeURL(Array("[1,2]".utf8)) + "." + parts[1] + "." + parts[2],
            Base64.encodeURL(Array("{\"alg\":\"HS256\",\"alg\":\"HS256\"}".utf8)) + "." + parts[1] + "." + parts[2],
            Base64.encodeURL(Array("{\"alg\":\"HS256\"".utf8)) + "." + parts[1] + "." + parts[2],
            "\u{00e9}\u{00e9}.\u{00e9}.\u{00e9}",
        ]
        for token in cases {
            let response = engine.decide(Self.request("hs", bearer: token))
            #expect(response.status == 401 && response.errorCode == ErrorCode.invalidToken.rawValue, "\(token): \(response.status) \(response.reason)")
        }
        let huge = hs(hsClaims.merging(["pad": String(repeating: "x", count: 9000)]) { $1 })
        expect(engine.decide(Self.request("hs", bearer: huge)), 401, .tokenTooLarge)
        expect(engine.decide(Self.request("hs", bearer: nil)), 401, .missingCredential, .unauthorized)
        let basic = Self.request("hs")
        let withBasic = DecisionRequest(
            clientID: basic.clientID, profileID: basic.profileID, method: basic.method, path: basic.path, sourceIP: basic.sourceIP,
            authorization: "Basic YWNtZTpwdw==")
        expect(engine.decide(withBasic), 401, .missingCredential, .unauthorized)
        // Random bytes: a bounded fuzz over the parser.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let length = Int.random(in: 0...300, using: &generator)
            let alphabet = Array("ABCxyz019-_.=+/ {}\"".utf8)
            let token = String(decoding: (0..<length).map { _ in alphabet.randomElement(using: &generator)! }, as: UTF8.self)
            let response = engine.decide(Self.request("hs", bearer: token))
            #expect(response.status == 401)
        }
    }

    // MARK: oidc

    @Test func oidcRSAECAndPSSTokensVerify() throws {
        let engine = try engine()
        keys(engine)
        expect(engine.decide(Self.request("sso", bearer: try signed(idClaims))), 200, .allowed)
        expect(engine.decide(Self.request("sso", bearer: try signed(idClaims, key: Self.ec, alg: .es256, kid: "ec-1"))), 200, .allowed)
        // A token without kid: tried against the compatible keys.
        expect(engine.decide(Self.request("sso", bearer: try signed(idClaims, kid: nil))), 200, .allowed)
        // The JWK says RS256: a PS256 signature by the same key is refused.
        expect(engine.decide(Self.request("sso", bearer: try signed(idClaims, alg: .ps256))), 401, .unknownKid)
        let pss = try AsymmetricKey.generate(.rsa)
        keys(engine, version: 2, kids: [(pss, "pss", .ps256)])
        expect(engine.decide(Self.request("sso", bearer: try signed(idClaims, key: pss, alg: .ps256, kid: "pss"))), 200, .allowed)
        // ES256 signed by a key the JWKS does not hold, under a known kid.
        keys(engine, version: 3)
        let stranger = try AsymmetricKey.generate(.ec(.p256))
        expect(engine.decide(Self.request("sso", bearer: try signed(idClaims, key: stranger, alg: .es256, kid: "ec-1"))), 401, .badSignature)
    }

    @Test func oidcClaimsIssuerAudienceRoles() throws {
        let engine = try engine()
        keys(engine)
        var claims = idClaims
        claims["iss"] = "https://evil.example.com/realms/acme"
        expect(engine.decide(Self.request("sso", bearer: try signed(claims))), 401, .wrongIssuer, .invalidToken)
        claims = idClaims
        claims["aud"] = "someone-else"
        expect(engine.decide(Self.request("sso", bearer: try signed(claims))), 401, .wrongAudience)
        claims["aud"] = "portcullis"
        expect(engine.decide(Self.request("sso", bearer: try signed(claims))), 200, .allowed)
        claims = idClaims
        claims["realm_access"] = ["roles": ["x"]]
        expect(engine.decide(Self.request("sso", bearer: try signed(claims))), 403, .missingRole, .forbidden)
        claims["exp"] = now - 100
        expect(engine.decide(Self.request("sso", bearer: try signed(claims))), 401, .jwtExpired)
        // sub is not matched to the client id for oidc.
        claims = idClaims
        claims["sub"] = "someone"
        expect(engine.decide(Self.request("sso-plain", bearer: try signed(claims))), 200, .allowed)
    }

    @Test func oidcKeyConfusionAndForbiddenHeaders() throws {
        let engine = try engine()
        keys(engine)
        // HS256 signed with the IdP's public key (its JWK text) as secret.
        let publicText = Self.rsa.publicJWK(kid: "rsa-1", alg: .rs256)
        let confused = JWSMinter.hmac(.hs256, secret: publicText, headerJSON: "{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", claimsJSON: Self.json(idClaims))
        expect(engine.decide(Self.request("sso", bearer: confused)), 401, .algorithmNotAllowed)
        for header in ["jku", "x5u"] {
            let token = try signed(idClaims, header: [header: "https://attacker.example/keys"])
            expect(engine.decide(Self.request("sso", bearer: token)), 401, .forbiddenHeader)
        }
        let embedded = try signed(idClaims, header: ["jwk": ["kty": "RSA", "n": "AQAB", "e": "AQAB"]])
        expect(engine.decide(Self.request("sso", bearer: embedded)), 401, .forbiddenHeader)
        // RS512 is not on sso's list.
        expect(engine.decide(Self.request("sso", bearer: try signed(idClaims, alg: .rs512))), 401, .algorithmNotAllowed)
    }

    @Test func oidcUnknownKidWaitsForKeysOnlyWhenAFetchIsAllowed() throws {
        let engine = try engine()
        // No keys yet: wait (the router fetches), or 503 if it cannot wait.
        let token = try signed(idClaims)
        guard case .waitForKeys(let source) = engine.decide(Self.request("sso", bearer: token), mayWaitForKeys: true) else {
            Issue.record("expected to wait for keys")
            return
        }
        #expect(source == Self.source)
        expect(engine.decide(Self.request("sso", bearer: token)), 503, .keysUnavailable, .authUnavailable)

        // Keys fetched just now: an unknown kid is refused without waiting.
        keys(engine)
        let rotated = try AsymmetricKey.generate(.rsa)
        let fresh = try signed(idClaims, key: rotated, kid: "rsa-2")
        guard case .response(let response) = engine.decide(Self.request("sso", bearer: fresh), mayWaitForKeys: true) else {
            Issue.record("a fetch under 10 s ago must not be repeated")
            return
        }
        expect(response, 401, .unknownKid)
        // 10 s later the same token may trigger a fetch...
        self.clock.advance(seconds: 10)
        guard case .waitForKeys = engine.decide(Self.request("sso", bearer: fresh), mayWaitForKeys: true) else {
            Issue.record("expected to wait for keys after 10 s")
            return
        }
        // ...and once the rotated key arrives it verifies, and old cached
        // verifications are dropped with the old key set.
        keys(engine, version: 2, kids: [(rotated, "rsa-2", .rs256)])
        expect(engine.decide(Self.request("sso", bearer: fresh)), 200, .allowed)
        expect(engine.decide(Self.request("sso", bearer: token)), 401, .unknownKid)
    }

    @Test func oidcRefreshKeepsCachedTokensWhoseKeyIsStillPublished() throws {
        let engine = try engine()
        keys(engine)
        let token = try signed(idClaims)
        expect(engine.decide(Self.request("sso", bearer: token)), 200, .allowed)
        let held = try #require(engine.auth.keys.sets[Self.source]?.keys.first { $0.kid == "rsa-1" }?.key)
        // The IdP adds a key ahead of rotation: rsa-1 is published unchanged,
        // keeps its key object, and the cached token costs no RSA verify.
        let next = try AsymmetricKey.generate(.rsa)
        keys(engine, version: 2, kids: [(Self.rsa, "rsa-1", .rs256), (next, "rsa-2", .rs256)])
        #expect(engine.auth.keys.sets[Self.source]?.keys.first { $0.kid == "rsa-1" }?.key === held)
        expect(engine.decide(Self.request("sso", bearer: token)), 200, .allowed)
        #expect(engine.auth.cache.hits == 1)
        // The same kid with other key material is a new key: not trusted
        // for the old verification.
        let impostor = try AsymmetricKey.generate(.rsa)
        keys(engine, version: 3, kids: [(impostor, "rsa-1", .rs256)])
        expect(engine.decide(Self.request("sso", bearer: token)), 401, .badSignature)
        #expect(engine.auth.cache.hits == 1)
    }

    @Test func oidcFailedFetchKeepsTheKeysWeHad() throws {
        let engine = try engine()
        keys(engine)
        let token = try signed(idClaims)
        expect(engine.decide(Self.request("sso", bearer: token)), 200, .allowed)
        _ = engine.applyKeys(KeySetMessage(source: Self.source, version: 1, jwksJSON: [], attemptedUnixMs: now * 1000, error: "IdP down"))
        self.clock.advance(seconds: 1)
        expect(engine.decide(Self.request("sso", bearer: try signed(idClaims.merging(["jti": "2"]) { $1 }))), 200, .allowed)
    }

    // MARK: mtls

    @Test func mtlsSubjectAndFingerprintBindings() throws {
        let engine = try engine()
        expect(engine.decide(Self.request("cert")), 401, .missingCredential, .unauthorized)
        expect(engine.decide(Self.request("cert", subject: "CN=acme-mobile,OU=partner-cert,O=ExampleCorp")), 200, .allowed)
        expect(engine.decide(Self.request("cert", subject: "O=ExampleCorp,OU=ops,OU=partner-cert,CN=acme-mobile")), 200, .allowed)
        expect(engine.decide(Self.request("cert", subject: "CN=acme-mobile,OU=partner-prod")), 403, .certMismatch, .forbidden)
        expect(engine.decide(Self.request("cert", subject: "CN=acme-mobile-2,OU=partner-cert")), 403, .certMismatch)
        // An escaped comma is part of the value, not a separator.
        expect(engine.decide(Self.request("cert", subject: "CN=acme-mobile\\,OU=partner-cert")), 403, .certMismatch)
        expect(engine.decide(Self.request("cert-fp", fingerprint: Self.fingerprint)), 200, .allowed)
        let colons = stride(from: 0, to: 64, by: 2).map { i in String(Self.fingerprint.dropFirst(i).prefix(2)) }.joined(separator: ":")
        expect(engine.decide(Self.request("cert-fp", fingerprint: colons.uppercased())), 200, .allowed)
        expect(engine.decide(Self.request("cert-fp", fingerprint: String(repeating: "cd", count: 32))), 403, .certMismatch)
        expect(engine.decide(Self.request("cert-fp", subject: "CN=acme-mobile")), 403, .certMismatch)
    }

    // MARK: cache

    @Test func cacheIsBoundedAndEvictsTheLeastRecentlyUsed() {
        let cache = VerifiedTokenCache(capacity: 3)
        let digests = (0..<5).map { Crypto.sha256("token-\($0)") }
        let window = ClaimChecks.Validity(from: 0, until: 100)
        let p = CredentialStamp(profileID: "p", clientID: "c", auth: AuthConfig(type: .jwt))
        for digest in digests.prefix(3) { cache.insert(digest, stamp: p, validity: window) }
        #expect(cache.contains(digests[0], stamp: p, now: 50))  // 0 becomes the newest
        cache.insert(digests[3], stamp: p, validity: window)  // evicts 1
        #expect(cache.count == 3)
        #expect(!cache.contains(digests[1], stamp: p, now: 50))
        #expect(cache.contains(digests[0], stamp: p, now: 50))
        #expect(cache.contains(digests[2], stamp: p, now: 50))
        #expect(!cache.contains(digests[0], stamp: p, now: 100))
        for index in 0..<1000 { cache.insert(Crypto.sha256("more-\(index)"), stamp: p, validity: window) }
        #expect(cache.count == 3)
    }

    @Test func cacheEntriesCountOnlyUnderTheirStampAndKey() throws {
        let cache = VerifiedTokenCache(capacity: 8)
        let digest = Crypto.sha256("token")
        let window = ClaimChecks.Validity(from: 0, until: 100)
        var auth = AuthConfig(type: .jwt)
        auth.secret = "$A"
        let stamp = CredentialStamp(profileID: "p", clientID: "c", auth: auth)
        #expect(stamp == CredentialStamp(profileID: "p", clientID: "c", auth: auth))
        cache.insert(digest, stamp: stamp, validity: window)
        #expect(cache.contains(digest, stamp: stamp, now: 50))
        // Another profile, another owner, or any changed auth key: a miss.
        #expect(!cache.contains(digest, stamp: CredentialStamp(profileID: "q", clientID: "c", auth: auth), now: 50))
        #expect(!cache.contains(digest, stamp: CredentialStamp(profileID: "p", clientID: "d", auth: auth), now: 50))
        var changes: [AuthConfig] = []
        for change in [
            { (a: inout AuthConfig) in a.secret = "$B" }, { $0.leewayS = 5 }, { $0.maxTTLS = 60 }, { $0.requireSubMatch = false },
            { $0.requiredClaims = ["tenant": "t"] }, { $0.algorithms = ["HS512"] }, { $0.type = .oidc },
        ] as [(inout AuthConfig) -> Void] {
            var changed = auth
            change(&changed)
            changes.append(changed)
        }
        for changed in changes {
            #expect(!cache.contains(digest, stamp: CredentialStamp(profileID: "p", clientID: "c", auth: changed), now: 50), "\(changed)")
        }
        // An oidc entry counts while its key is trusted.
        let key = try AsymmetricKey.generate(.ec(.p256))
        let other = Crypto.sha256("id-token")
        cache.insert(other, stamp: stamp, key: key, validity: window)
        #expect(cache.contains(other, stamp: stamp, now: 50) { $0 === key })
        #expect(!cache.contains(other, stamp: stamp, now: 50) { _ in false })
    }
}

@Suite("Bearer credential")
struct BearerCredentialTests {
    @Test(arguments: [
        ("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER\tabc", "abc"), ("  Bearer   abc  ", "abc"),
        ("Bearer a b", "a b"), ("Bearer ü-tok", "ü-tok"),
    ])
    func findsTheCredential(header: String, token: String) {
        #expect(BearerCredential.token(in: header) == Substring(token))
        #expect(BearerCredential.withToken(in: header) { String(decoding: $0, as: UTF8.self) } == token)
    }

    @Test(arguments: ["", "Bearer", "Bearer ", "Bearer    ", "Bearerabc", "Basic abc", "Bear abc", "xBearer abc"])
    func anythingElseIsNoCredential(header: String) {
        #expect(BearerCredential.token(in: header) == nil)
        #expect(BearerCredential.withToken(in: header) { _ in true } == nil)
    }
}
