import Foundation
import Testing

@testable import Shared

@Suite("Config loading and validation")
struct ConfigTests {
    static let tokenHash = Crypto.sha256("pcl_test").hex

    static let valid = """
        server:
          listen: "127.0.0.1:8080"
          trusted_proxies: ["10.0.0.0/8"]
          decision_log: off
        collections:
          - id: orders
            upstream: { url: "http://127.0.0.1:9000/base/", timeout_ms: 2000, credential: backend }
            routes: [ { path_prefix: /orders }, { path_prefix: /v2/orders/, strip_prefix: true } ]
        credentials:
          - { id: backend, header: X-Api-Key, value: "$BACKEND_KEY" }
        policies:
          - id: standard
            rate_limits: [ { limit: 100, per: second, burst: 200 }, { limit: 3000, per: minute } ]
            quotas: [ { limit: 100000, per: day } ]
        clients:
          - id: acme
            collections: [orders]
            policy: standard
            profiles:
              - id: acme-token
                auth: { type: token, token_sha256: "\(tokenHash)" }
                allowed_methods: [GET, POST]
                allowed_ips: ["10.0.0.0/24", "2001:db8::/32"]
              - id: acme-open
                status: inactive
                auth: { type: none }
        """

    @Test("a valid file loads with defaults filled in")
    func loadsValid() throws {
        let config = try ConfigLoader.validate(ConfigLoader.parse(yaml: Self.valid), environment: ["BACKEND_KEY": "k"])
        #expect(config.model.server.decisionLog == "off")
        #expect(config.model.server.adminListen == "127.0.0.1:8081")
        #expect(config.model.server.limits == LimitsConfig())
        #expect(config.model.clients[0].status == .active)
        #expect(config.model.clients[0].profiles[1].status == .inactive)
        #expect(config.model.policies[0].rateLimits[1].effectiveBurst == 3000)
        #expect(config.credentials["backend"] == ResolvedCredential(header: "X-Api-Key", value: "k"))
        #expect(config.upstreams["orders"]?.basePath == "/base")
        #expect(config.upstreams["orders"]?.port == 9000)
        #expect(config.trustedProxies.contains(IPAddress("10.9.9.9")!))
    }

    private func issues(_ yaml: String, environment: [String: String] = ["BACKEND_KEY": "k"]) -> [String] {
        do {
            _ = try ConfigLoader.validate(ConfigLoader.parse(yaml: yaml), environment: environment)
            return []
        } catch {
            return error.issues.map(\.description)
        }
    }

    @Test("an unknown key is an error naming where it is")
    func unknownKey() {
        let yaml = Self.valid.replacingFirst("allowed_ips:", with: "alowed_ips:")
        let found = self.issues(yaml)
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("clients[0].profiles[0].alowed_ips: unknown key") == true)
    }

    @Test("a type error names the field")
    func typeError() {
        let found = self.issues(Self.valid.replacingFirst("timeout_ms: 2000", with: "timeout_ms: soon"))
        #expect(found == ["collections[0].upstream.timeout_ms: expected an integer"])
    }

    @Test("a quota period under rate_limits gets a hint")
    func windowHint() {
        let found = self.issues(Self.valid.replacingFirst("per: minute", with: "per: day"))
        #expect(found.first?.contains("policies[0].rate_limits[1].per") == true)
        #expect(found.first?.contains("put it under quotas") == true)
    }

    @Test("semantic problems are all reported at once")
    func semantic() {
        let yaml = Self.valid
            .replacingFirst("policy: standard", with: "policy: missing")
            .replacingFirst("collections: [orders]", with: "collections: [orders, nope]")
            .replacingFirst("\(Self.tokenHash)", with: "abc")
            .replacingFirst("\"10.0.0.0/24\"", with: "\"10.0.0.0/99\"")
            .replacingFirst("[GET, POST]", with: "[get]")
            .replacingFirst("id: acme-open", with: "id: acme-token")
        let found = Set(self.issues(yaml))
        #expect(found.contains("clients[0].policy: no policy with id missing"))
        #expect(found.contains("clients[0].collections[1]: no collection with id nope"))
        #expect(found.contains("clients[0].profiles[0].auth.token_sha256: must be 64 hex digits (SHA-256 of the token)"))
        #expect(found.contains("clients[0].profiles[0].allowed_ips[0]: not an IP address or CIDR range"))
        #expect(found.contains("clients[0].profiles[0].allowed_methods[0]: not an HTTP method (use upper case, e.g. GET)"))
        #expect(found.contains { $0.hasPrefix("clients[0].profiles[1].id: profile id acme-token is already used") })
        #expect(found.count == 6)
    }

    @Test("profile ids are unique across clients")
    func profileIDsGlobal() {
        let yaml = Self.valid + """

              - id: other
                profiles:
                  - id: acme-token
                    auth: { type: none }
            """
        #expect(self.issues(yaml).contains { $0.hasPrefix("clients[1].profiles[0].id: profile id acme-token is already used by client acme") })
    }

    @Test("secrets must resolve, and plaintext is refused")
    func secrets() {
        // A missing variable is the environment's fault: the config loads and
        // only that credential is unavailable (500 credential_unavailable at request time).
        #expect(self.issues(Self.valid, environment: [:]).isEmpty)
        let loaded = try? ConfigLoader.validate(ConfigLoader.parse(yaml: Self.valid), environment: [:])
        #expect(loaded?.credentials.values.first?.unavailable == "environment variable BACKEND_KEY is not set")
        // A value that does not decrypt is the config's fault: rejected.
        let wrong = Self.valid.replacingFirst("\"$BACKEND_KEY\"", with: "\"enc:v1:00000000:AAAA\"")
        #expect(self.issues(wrong, environment: ["ENCRYPTION_KEY": String(repeating: "11", count: 32)]).first?.hasPrefix("credentials[0].value") == true)
        let plaintext = Self.valid.replacingFirst("\"$BACKEND_KEY\"", with: "hunter2")
        #expect(self.issues(plaintext).first?.hasPrefix("credentials[0].value: secrets are never stored in plaintext") == true)
    }

    @Test("two collections cannot claim one prefix")
    func duplicatePrefix() {
        let yaml = Self.valid.replacingFirst(
            "credentials:",
            with: """
                  - id: shadow
                    upstream: { url: "http://127.0.0.1:9001" }
                    routes: [ { path_prefix: /orders/ } ]
                credentials:
                """)
        #expect(self.issues(yaml) == ["collections[1].routes[0].path_prefix: /orders/ is already routed to collection orders"])
    }

    @Test(
        "jwt, oidc and mtls profiles are checked key by key",
        arguments: [
            ("auth: { type: mtls }", "clients[0].profiles[1].auth: auth type mtls needs subject: {cn, ou} or fingerprint_sha256"),
            ("auth: { type: mtls, subject: { cn: a }, fingerprint_sha256: \"\(String(repeating: "a", count: 64))\" }",
             "clients[0].profiles[1].auth: bind either subject or fingerprint_sha256, not both"),
            ("auth: { type: mtls, fingerprint_sha256: \"abc\" }",
             "clients[0].profiles[1].auth.fingerprint_sha256: must be the certificate's SHA-256: 64 hex digits, colons allowed"),
            ("auth: { type: jwt }",
             "clients[0].profiles[1].auth.secret: required for auth type jwt (enc:v1:... from portcullis secret encrypt, or $ENV_VAR)"),
            ("auth: { type: jwt, secret: hunter2 }",
             "clients[0].profiles[1].auth.secret: secrets are never stored in plaintext: use enc:v1:... (portcullis secret encrypt) or a $ENV_VAR reference"),
            ("auth: { type: jwt, secret: \"$BACKEND_KEY\", algorithms: [RS256] }",
             "clients[0].profiles[1].auth.algorithms[0]: RS256 is not allowed here (one of HS256, HS384, HS512)"),
            ("auth: { type: jwt, secret: \"$BACKEND_KEY\", leeway_s: 3600 }", "clients[0].profiles[1].auth.leeway_s: must be 0...600"),
            ("auth: { type: jwt, secret: \"$NOT_SET_ANYWHERE\" }",
             "clients[0].profiles[1].auth.secret: environment variable NOT_SET_ANYWHERE is not set"),
            ("auth: { type: oidc, issuer: \"http://idp.example.com\", audience: a }",
             "clients[0].profiles[1].auth.issuer: must be an https:// URL (http:// only for loopback)"),
            ("auth: { type: oidc, issuer: \"https://idp.example.com\", audience: a, algorithms: [HS256] }",
             "clients[0].profiles[1].auth.algorithms[0]: HS256 is not allowed here (one of ES256, ES384, PS256, RS256, RS384, RS512)"),
            ("auth: { type: oidc, issuer: \"https://idp.example.com\" }", "clients[0].profiles[1].auth.audience: required for auth type oidc"),
            ("auth: { type: oidc, issuer: \"https://idp.example.com\", audience: a, secret: \"$BACKEND_KEY\" }",
             "clients[0].profiles[1].auth.secret: only applies to auth type jwt"),
            ("auth: { type: none, issuer: \"https://idp.example.com\" }", "clients[0].profiles[1].auth.issuer: only applies to auth type oidc"),
        ])
    func authKeys(auth: String, issue: String) {
        let yaml = Self.valid.replacingFirst("auth: { type: none }", with: auth)
        #expect(self.issues(yaml) == [issue])
    }

    @Test("valid jwt, oidc and mtls profiles load")
    func validAuth() {
        for auth in [
            "auth: { type: jwt, secret: \"$BACKEND_KEY\", algorithms: [HS256, HS512], max_ttl_s: 600, required_claims: { tenant_id: t } }",
            "auth: { type: oidc, issuer: \"https://idp.example.com/realms/a\", audience: a, jwks_uri: \"https://idp.example.com/keys\", roles_claim: realm_access.roles, required_roles: [x] }",
            "auth: { type: oidc, issuer: \"http://127.0.0.1:8080/realms/a\", audience: a }",
            "auth: { type: mtls, subject: { cn: acme, ou: ops } }",
            "auth: { type: mtls, fingerprint_sha256: \"\(Array(repeating: "AB", count: 32).joined(separator: ":"))\" }",
        ] {
            #expect(self.issues(Self.valid.replacingFirst("auth: { type: none }", with: auth)) == [], "\(auth)")
        }
    }

    @Test("an empty document is an empty model")
    func empty() throws {
        let model = try ConfigLoader.parse(yaml: "")
        #expect(model.clients.isEmpty)
        #expect(model.server.listen == "0.0.0.0:8080")
    }

    @Test("a config file must hold a document: empty, blank or comments-only files are refused")
    func emptyFileRefused() throws {
        let path = NSTemporaryDirectory() + "pcl-empty-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        for text in ["", "\n  \n", "# only a comment\n"] {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(throws: ConfigError.self, "\(text.debugDescription)") { try ConfigLoader.read(path: path) }
            #expect((try? ConfigLoader.load(path: path, environment: [:])) == nil)
        }
        try "server: { workers: 3 }\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try ConfigLoader.read(path: path).server.workers == 3)
        // A syntax error is named as one, not as "no document".
        try "server: [\n".write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try ConfigLoader.read(path: path)
            Issue.record("broken YAML was read")
        } catch {
            #expect(error.description.contains("YAML syntax"), "\(error)")
        }
    }

    @Test("upstream URLs and listen addresses parse strictly")
    func endpoints() {
        #expect(UpstreamURL("http://backend")?.port == 80)
        #expect(UpstreamURL("http://[::1]:9000")?.host == "::1")
        #expect(UpstreamURL("http://[::1]:9000")?.authority == "[::1]:9000")
        #expect(UpstreamURL("https://backend") == nil)
        #expect(UpstreamURL("http://user@backend") == nil)
        #expect(UpstreamURL("http://backend/x?y") == nil)
        #expect(HostPort("[::]:8080") == HostPort(host: "::", port: 8080))
        #expect(HostPort("0.0.0.0:99999") == nil)
        #expect(HostPort("nohost") == nil)
    }

    @Test("worker snapshots split clients and remember who owns other profiles")
    func partition() throws {
        let model = try ConfigLoader.parse(yaml: Self.valid + """

              - id: beta
                profiles:
                  - id: beta-open
                    auth: { type: none }
            """)
        let snapshots = WorkerSnapshot.partition(model, version: 4, workerCount: 2) { $0 == "acme" ? 0 : 1 }
        #expect(snapshots.map { $0.clients.map(\.id) } == [["acme"], ["beta"]])
        #expect(snapshots[0].foreignProfiles == ["beta-open": "beta"])
        #expect(snapshots[1].foreignProfiles == ["acme-token": "acme", "acme-open": "acme"])
        let decoded = try WorkerSnapshot.decode(snapshots[1].encoded())
        #expect(decoded == snapshots[1])
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = self.range(of: target) else {
            Issue.record("test fixture does not contain \(target)")
            return self
        }
        return self.replacingCharacters(in: range, with: replacement)
    }
}
