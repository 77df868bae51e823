import Foundation
import Shared
import Testing

/// jwt, oidc and mtls-behind-ingress over HTTP through real processes: the
/// router, its workers, the demo upstream, and a real local OIDC issuer
/// serving discovery and a JWKS over HTTP.
@Suite("Auth through real processes", .serialized)
struct AuthIntegrationTests {
    static let secret = "it-hs256-secret-0123456789abcdef"
    static let encryptionKeyHex = String(repeating: "0f", count: 32)

    static func yaml(_ cluster: Cluster, issuer: OIDCIssuer, encryptedSecret: String) -> String {
        cluster.serverBlock(extra: "  trusted_proxies: [\"127.0.0.2/32\"]") + "\n" + """
            collections:
              - id: api
                upstream: { url: "\(cluster.upstreamURL)" }
                routes: [ { path_prefix: /api, strip_prefix: true } ]
            clients:
              - id: acme
                collections: [api]
                profiles:
                  - id: acme-jwt
                    auth: { type: jwt, secret: "\(encryptedSecret)", max_ttl_s: 3600, required_claims: { tenant_id: t-1 } }
                  - id: acme-sso
                    auth: { type: oidc, issuer: "\(issuer.issuer)", audience: portcullis, algorithms: [RS256, ES256] }
                  - id: acme-cert
                    auth: { type: mtls, subject: { cn: acme-mobile, ou: partner-cert } }
                  - id: acme-open
                    auth: { type: none }
            """
    }

    static func hs(_ claims: [String: Any], secret: String = AuthIntegrationTests.secret) -> String {
        let body = String(decoding: try! JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]), as: UTF8.self)
        return JWSMinter.hmac(.hs256, secret: secret, headerJSON: "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claimsJSON: body)
    }

    static func call(_ cluster: Cluster, _ profile: String, bearer: String? = nil, headers: [(String, String)] = [], source: String? = nil) throws -> HTTPResponse {
        var text = "GET /api/anything HTTP/1.1\r\nHost: auth.test\r\nX-Client-ID: acme\r\nX-Profile-ID: \(profile)\r\n"
        if let bearer { text += "Authorization: Bearer \(bearer)\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "Connection: close\r\n\r\n"
        let client = try HTTPClient(port: cluster.port, source: source)
        try client.send(text)
        return try client.readResponse()
    }

    final class Setup {
        let issuer: OIDCIssuer
        let first: OIDCIssuer.SigningKey
        let cluster: Cluster

        init() throws {
            self.first = OIDCIssuer.SigningKey(kid: "k1", key: try AsymmetricKey.generate(.rsa), alg: .rs256)
            self.issuer = try OIDCIssuer(keys: [self.first])
            let key = try EncryptionKey(parsing: AuthIntegrationTests.encryptionKeyHex)
            let sealed = try SecretValue.encrypt(AuthIntegrationTests.secret, key: key)
            let issuer = self.issuer
            self.cluster = try Cluster(workers: 2, environment: ["ENCRYPTION_KEY": AuthIntegrationTests.encryptionKeyHex]) {
                AuthIntegrationTests.yaml($0, issuer: issuer, encryptedSecret: sealed)
            }
            // Keys are fetched once at start-up, by the router.
            try waitUntil(10, "the router to fetch the issuer's keys") {
                ((self.cluster.readiness()?["oidc"] as? [[String: Any]])?.first?["version"] as? Int ?? 0) >= 1
            }
        }

        func stop() {
            self.cluster.stop()
            self.issuer.stop()
        }
    }

    @Test func jwtCatalogueOverHTTP() throws {
        let setup = try Setup()
        defer { setup.stop() }
        let now = Int(Date().timeIntervalSince1970)
        let good: [String: Any] = ["sub": "acme", "iat": now, "exp": now + 600, "tenant_id": "t-1"]
        let ok = try Self.call(setup.cluster, "acme-jwt", bearer: Self.hs(good))
        #expect(ok.status == 200, "\(ok.text)")
        // The upstream never sees the client's token.
        #expect(ok.echoed("Authorization").isEmpty)
        #expect(ok.echoed("X-Consumer-Profile-ID") == ["acme-jwt"])

        // Within the 30 s leeway either side: accepted.
        #expect(try Self.call(setup.cluster, "acme-jwt", bearer: Self.hs(good.merging(["exp": now - 10]) { $1 })).status == 200)
        #expect(try Self.call(setup.cluster, "acme-jwt", bearer: Self.hs(good.merging(["nbf": now + 10]) { $1 })).status == 200)
        let claimsJSON = String(decoding: try JSONSerialization.data(withJSONObject: good, options: [.sortedKeys]), as: UTF8.self)
        let unsigned = Base64.encodeURL(Array("{\"alg\":\"none\",\"typ\":\"JWT\"}".utf8)) + "." + Base64.encodeURL(Array(claimsJSON.utf8)) + "."
        let hs512 = JWSMinter.hmac(.hs512, secret: Self.secret, headerJSON: "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", claimsJSON: claimsJSON)
        let cases: [(String, String, String)] = [
            ("expired beyond leeway", Self.hs(good.merging(["exp": now - 60]) { $1 }), "invalid_token"),
            ("not yet valid", Self.hs(good.merging(["nbf": now + 120]) { $1 }), "invalid_token"),
            ("issued in the future", Self.hs(good.merging(["iat": now + 120, "exp": now + 900]) { $1 }), "invalid_token"),
            ("alg none", unsigned, "invalid_token"),
            ("HS512 where only HS256 is allowed", hs512, "invalid_token"),
            ("wrong secret", Self.hs(good, secret: "not-the-secret"), "invalid_token"),
            ("wrong sub", Self.hs(good.merging(["sub": "globex"]) { $1 }), "invalid_token"),
            ("missing tenant_id", Self.hs(good.filter { $0.key != "tenant_id" }), "invalid_token"),
            ("over max lifetime", Self.hs(good.merging(["exp": now + 7200]) { $1 }), "invalid_token"),
            ("truncated", String(Self.hs(good).dropLast(10)), "invalid_token"),
            ("garbage", "not-a-jwt-at-all", "invalid_token"),
            ("oversized", String(repeating: "a", count: 9000) + ".b.c", "invalid_token"),
        ]
        for (name, token, code) in cases {
            let response = try Self.call(setup.cluster, "acme-jwt", bearer: token)
            #expect(response.status == 401, "\(name): \(response.status) \(response.text)")
            #expect(response.json?["error"] as? String == code, "\(name)")
        }
        let missing = try Self.call(setup.cluster, "acme-jwt")
        #expect(missing.status == 401 && missing.json?["error"] as? String == "unauthorized")

        // A token minted by `portcullis jwt sign` (secret on stdin) passes.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.path("portcullis"))
        process.arguments = ["jwt", "sign", "--sub", "acme", "--ttl", "120", "--claim", "tenant_id=t-1"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(Self.secret.utf8))
        try input.fileHandleForWriting.close()
        let minted = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(try Self.call(setup.cluster, "acme-jwt", bearer: minted).status == 200)
    }

    @Test func oidcTokensRotationAndIdPOutage() throws {
        let setup = try Setup()
        defer { setup.stop() }
        let cluster = setup.cluster
        let issuer = setup.issuer
        #expect(try Self.call(cluster, "acme-sso", bearer: try issuer.token(setup.first)).status == 200)
        let fetchesAtStart = issuer.fetches
        #expect(fetchesAtStart == 1, "one JWKS fetch per instance, not per worker: \(fetchesAtStart)")

        // Wrong audience, another issuer, key confusion, key-bringing
        // headers, an expired token: 401 and no refetch.
        #expect(try Self.call(cluster, "acme-sso", bearer: try issuer.token(setup.first, audience: "other")).status == 401)
        let idClaims = "{\"iss\":\"\(issuer.issuer)\",\"aud\":\"portcullis\",\"sub\":\"u\",\"exp\":\(Int(Date().timeIntervalSince1970) + 300)}"
        let confused = JWSMinter.hmac(
            .hs256, secret: setup.first.key.publicJWK(kid: "k1", alg: .rs256), headerJSON: "{\"alg\":\"HS256\",\"kid\":\"k1\"}", claimsJSON: idClaims)
        let jku = try JWSMinter.token(headerJSON: "{\"alg\":\"RS256\",\"kid\":\"k1\",\"jku\":\"http://127.0.0.1:1/keys\"}", claimsJSON: idClaims) {
            try setup.first.key.sign(.rs256, message: $0)
        }
        let expired = try issuer.token(setup.first, claims: ["exp": Int(Date().timeIntervalSince1970) - 120])
        for (name, token) in [("key confusion", confused), ("jku header", jku), ("expired", expired), ("garbage", "x.y.z")] {
            let response = try Self.call(cluster, "acme-sso", bearer: token)
            #expect(response.status == 401 && response.json?["error"] as? String == "invalid_token", "\(name): \(response.status)")
        }
        let foreign = try issuer.token(setup.first, claims: ["iss": "https://other-idp.example.com"])
        let wrongIssuer = try Self.call(cluster, "acme-sso", bearer: foreign)
        #expect(wrongIssuer.status == 401 && wrongIssuer.json?["error"] as? String == "invalid_token")

        // The IdP rotates to a new EC key: the first token with the new kid
        // makes the router refetch (the keys are older than 10 s by now or
        // will be after the wait below), and it is accepted, not 401.
        let second = OIDCIssuer.SigningKey(kid: "k2", key: try AsymmetricKey.generate(.ec(.p256)), alg: .es256)
        issuer.publish([second])
        Thread.sleep(forTimeInterval: 10.2)  // the refetch window of SPEC §9: time itself is what is tested
        var statuses: [Int] = []
        for _ in 0..<20 { statuses.append(try Self.call(cluster, "acme-sso", bearer: try issuer.token(second)).status) }
        #expect(statuses.allSatisfy { $0 == 200 }, "after rotation: \(statuses)")
        #expect(issuer.fetches == fetchesAtStart + 1)

        // A flood of made-up kids: all 401, the IdP sees at most one more fetch.
        let bogus = OIDCIssuer.SigningKey(kid: "nope", key: try AsymmetricKey.generate(.ec(.p256)), alg: .es256)
        var floodStatuses = Set<Int>()
        for _ in 0..<50 { floodStatuses.insert(try Self.call(cluster, "acme-sso", bearer: try issuer.token(bogus)).status) }
        #expect(floodStatuses == [401])
        #expect(issuer.fetches <= fetchesAtStart + 2, "JWKS fetches: \(issuer.fetches)")

        // The IdP goes down: cached keys keep serving.
        issuer.setFailing(true)
        for _ in 0..<5 { #expect(try Self.call(cluster, "acme-sso", bearer: try issuer.token(second)).status == 200) }
        // The old key was withdrawn at rotation: its tokens no longer pass.
        #expect(try Self.call(cluster, "acme-sso", bearer: try issuer.token(setup.first)).status == 401)
    }

    @Test func mtlsHeadersCountOnlyFromTrustedProxies() throws {
        let setup = try Setup()
        defer { setup.stop() }
        let cluster = setup.cluster
        let nginxStyle = [
            ("X-SSL-Client-Verify", "SUCCESS"), ("X-SSL-Client-S-DN", "CN=acme-mobile,OU=partner-cert,O=ExampleCorp"),
            ("X-SSL-Client-Fingerprint", String(repeating: "ab", count: 32)),
        ]
        // From the trusted proxy (127.0.0.2): accepted and passed on.
        let trusted = try Self.call(cluster, "acme-cert", headers: nginxStyle, source: "127.0.0.2")
        #expect(trusted.status == 200, "\(trusted.text)")
        #expect(trusted.echoed("X-SSL-Client-S-DN") == ["CN=acme-mobile,OU=partner-cert,O=ExampleCorp"])
        // Same headers straight from a client: no certificate at all.
        let spoofed = try Self.call(cluster, "acme-cert", headers: nginxStyle, source: "127.0.0.1")
        #expect(spoofed.status == 401 && spoofed.json?["error"] as? String == "unauthorized")
        // And they never reach an upstream from an untrusted peer.
        let open = try Self.call(cluster, "acme-open", headers: nginxStyle + [("X-Forwarded-Client-Cert", "Hash=ab;Subject=\"CN=x\"")], source: "127.0.0.1")
        #expect(open.status == 200)
        for name in ["X-SSL-Client-Verify", "X-SSL-Client-S-DN", "X-SSL-Client-Fingerprint", "X-Forwarded-Client-Cert"] {
            #expect(open.echoed(name).isEmpty, "\(name) leaked upstream")
        }
        // A verification failure reported by the proxy is no certificate.
        let failed = try Self.call(cluster, "acme-cert", headers: [("X-SSL-Client-Verify", "FAILED:certificate has expired"), ("X-SSL-Client-S-DN", "CN=acme-mobile,OU=partner-cert")], source: "127.0.0.2")
        #expect(failed.status == 401)
        // A valid certificate of someone else: 403.
        let other = try Self.call(cluster, "acme-cert", headers: [("X-SSL-Client-Verify", "SUCCESS"), ("X-SSL-Client-S-DN", "CN=globex,OU=partner-cert")], source: "127.0.0.2")
        #expect(other.status == 403 && other.json?["error"] as? String == "forbidden")
        // Envoy style.
        let envoy = try Self.call(
            cluster, "acme-cert",
            headers: [("X-Forwarded-Client-Cert", "By=spiffe://mesh/gw;Hash=\(String(repeating: "cd", count: 32));Subject=\"CN=acme-mobile,OU=partner-cert\";URI=")],
            source: "127.0.0.2")
        #expect(envoy.status == 200, "\(envoy.text)")
    }

    @Test func aJWTSecretThatCannotBeResolvedStopsStartUpNamingTheField() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pcl-auth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("bad.yaml").path
        try """
            server: { listen: "127.0.0.1:\(Ports.free())", admin_listen: "127.0.0.1:\(Ports.free())", decision_log: "off" }
            collections: [ { id: api, upstream: { url: "http://127.0.0.1:9" }, routes: [ { path_prefix: /api } ] } ]
            clients:
              - id: acme
                collections: [api]
                profiles:
                  - id: acme-jwt
                    auth: { type: jwt, secret: "$PCL_IT_UNSET_SECRET" }
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let child = try ChildProcess(Binaries.path("portcullis"), ["serve", "--config", path, "--workers", "1"], directory: directory, name: "router")
        try waitUntil(20, "the router to refuse the config") { !child.process.isRunning }
        #expect(child.process.terminationStatus != 0)
        #expect(child.stderr.contains("clients[0].profiles[0].auth.secret"), "\(child.stderr)")
        #expect(child.stderr.contains("PCL_IT_UNSET_SECRET"))
    }
}
