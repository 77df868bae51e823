import Foundation
import Shared
import Testing

@testable import Router

#if canImport(Glibc)
import Glibc
#endif

/// Native mtls: the router terminates TLS on `server.tls.listen` and
/// verifies client certificates itself. Certificates are made by the test
/// with the openssl CLI (a CA, a server certificate, client certificates
/// that are valid, expired, or from another CA); the client is
/// `openssl s_client`, a real TLS stack on the other end.
@Suite("Native TLS and mtls (real processes)", .serialized)
struct NativeTLSTests {
    final class PKI {
        let directory: URL

        init() throws {
            self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("pcl-pki-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
            try self.run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Test CA"])
            try self.run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue-ca.key", "-out", "rogue-ca.pem", "-days", "2", "-subj", "/CN=Rogue CA"])
            try self.issue("server", subject: "/CN=127.0.0.1", ca: "ca", extensions: "subjectAltName=IP:127.0.0.1")
            try self.issue("client", subject: "/O=ExampleCorp/OU=partner-cert/CN=acme-mobile", ca: "ca")
            try self.issue("other", subject: "/OU=partner-cert/CN=globex", ca: "ca")
            try self.issue("rogue", subject: "/OU=partner-cert/CN=acme-mobile", ca: "rogue-ca")
            try self.issue("expired", subject: "/OU=partner-cert/CN=acme-mobile", ca: "ca", expired: true)
        }

        func path(_ name: String) -> String { self.directory.appendingPathComponent(name).path }

        /// A certificate signed by `ca`; `expired` ones ended in 2021
        /// (`openssl ca` is the CLI way to set both dates).
        func issue(_ name: String, subject: String, ca: String, extensions: String? = nil, expired: Bool = false) throws {
            try self.run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(name).key", "-out", "\(name).csr", "-subj", subject])
            if expired {
                let conf = """
                    [ ca ]
                    default_ca = test
                    [ test ]
                    dir = \(self.directory.path)
                    database = $dir/index.txt
                    new_certs_dir = $dir
                    serial = $dir/serial
                    default_md = sha256
                    policy = anything
                    [ anything ]
                    commonName = supplied
                    organizationalUnitName = optional
                    """
                try conf.write(toFile: self.path("ca.cnf"), atomically: true, encoding: .utf8)
                try "".write(toFile: self.path("index.txt"), atomically: true, encoding: .utf8)
                try "01\n".write(toFile: self.path("serial"), atomically: true, encoding: .utf8)
                try self.run([
                    "ca", "-batch", "-config", "ca.cnf", "-cert", "\(ca).pem", "-keyfile", "\(ca).key", "-in", "\(name).csr",
                    "-out", "\(name).pem", "-startdate", "20200101000000Z", "-enddate", "20210101000000Z", "-notext",
                ])
            } else {
                var arguments = ["x509", "-req", "-in", "\(name).csr", "-CA", "\(ca).pem", "-CAkey", "\(ca).key", "-CAcreateserial", "-out", "\(name).pem", "-days", "2"]
                if let extensions {
                    try extensions.write(toFile: self.path("\(name).ext"), atomically: true, encoding: .utf8)
                    arguments += ["-extfile", "\(name).ext"]
                }
                try self.run(arguments)
            }
        }

        func fingerprint(_ name: String) throws -> String {
            let out = try self.run(["x509", "-in", "\(name).pem", "-noout", "-fingerprint", "-sha256"])
            return String(out.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }

        @discardableResult
        func run(_ arguments: [String], input: String? = nil) throws -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = arguments
            process.currentDirectoryURL = self.directory
            let out = Pipe()
            process.standardOutput = out
            process.standardError = Pipe()
            try process.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw HarnessError("openssl \(arguments.joined(separator: " ")) failed") }
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// One HTTPS request through `openssl s_client`: the response text, or
    /// nil when the handshake failed.
    static func request(port: Int, pki: PKI, certificate: String?, profile: String) throws -> String? {
        var arguments = ["s_client", "-connect", "127.0.0.1:\(port)", "-CAfile", pki.path("ca.pem"), "-verify_return_error", "-quiet"]
        if let certificate { arguments += ["-cert", pki.path("\(certificate).pem"), "-key", pki.path("\(certificate).key")] }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.currentDirectoryURL = pki.directory
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = Pipe()
        try process.run()
        let request = "GET /api/tls HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Client-ID: acme\r\nX-Profile-ID: \(profile)\r\nConnection: close\r\n\r\n"
        input.fileHandleForWriting.write(Data(request.utf8))
        // Bounded: the server closes after the response (Connection: close)
        // or the handshake fails; either way s_client ends.
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate() }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return text.hasPrefix("HTTP/1.1") ? text : nil
    }

    @Test func clientCertificatesAreVerifiedByTheRouter() throws {
        let pki = try PKI()
        defer { try? FileManager.default.removeItem(at: pki.directory) }
        let tlsPort = Ports.free()
        let fingerprint = try pki.fingerprint("client")
        let cluster = try Cluster(workers: 2) { cluster in
            cluster.serverBlock(extra: """
                  tls: { listen: "127.0.0.1:\(tlsPort)", cert: "\(pki.path("server.pem"))", key: "\(pki.path("server.key"))", client_ca: "\(pki.path("ca.pem"))" }
                """) + "\n" + """
                collections:
                  - id: api
                    upstream: { url: "\(cluster.upstreamURL)" }
                    routes: [ { path_prefix: /api, strip_prefix: true } ]
                clients:
                  - id: acme
                    collections: [api]
                    profiles:
                      - id: acme-cert
                        auth: { type: mtls, subject: { cn: acme-mobile, ou: partner-cert } }
                      - id: acme-fp
                        auth: { type: mtls, fingerprint_sha256: "\(fingerprint)" }
                      - id: acme-open
                        auth: { type: none }
                """
        }
        defer { cluster.stop() }

        let ok = try #require(try Self.request(port: tlsPort, pki: pki, certificate: "client", profile: "acme-cert"))
        #expect(ok.hasPrefix("HTTP/1.1 200"), "\(ok)")
        #expect(ok.contains("Strict-Transport-Security: max-age=31536000"))
        let byFingerprint = try #require(try Self.request(port: tlsPort, pki: pki, certificate: "client", profile: "acme-fp"))
        #expect(byFingerprint.hasPrefix("HTTP/1.1 200"), "\(byFingerprint)")
        // No certificate: the handshake succeeds (other profiles share the
        // port) and the mtls profile answers 401; a none profile is fine.
        let none = try #require(try Self.request(port: tlsPort, pki: pki, certificate: nil, profile: "acme-cert"))
        #expect(none.hasPrefix("HTTP/1.1 401"), "\(none)")
        #expect(none.contains("Strict-Transport-Security"))
        let open = try #require(try Self.request(port: tlsPort, pki: pki, certificate: nil, profile: "acme-open"))
        #expect(open.hasPrefix("HTTP/1.1 200"))
        // A valid certificate of another client: 403.
        let other = try #require(try Self.request(port: tlsPort, pki: pki, certificate: "other", profile: "acme-cert"))
        #expect(other.hasPrefix("HTTP/1.1 403"), "\(other)")
        // Another CA's certificate and an expired one fail the handshake:
        // they never reach a worker.
        #expect(try Self.request(port: tlsPort, pki: pki, certificate: "rogue", profile: "acme-cert") == nil)
        #expect(try Self.request(port: tlsPort, pki: pki, certificate: "expired", profile: "acme-cert") == nil)
        // The plain listener carries no HSTS.
        let plain = try cluster.send("GET", "/api/x", headers: [("X-Client-ID", "acme"), ("X-Profile-ID", "acme-open")])
        #expect(plain.status == 200 && plain.header("Strict-Transport-Security") == nil)
        // Still up and serving after the refused handshakes.
        #expect(try Self.request(port: tlsPort, pki: pki, certificate: "client", profile: "acme-cert")?.hasPrefix("HTTP/1.1 200") == true)
    }

    /// SIGTERM drains both listeners. Each has its own quiescing helper: a
    /// shared one only ever collected the first listener's connections, so
    /// the TLS port kept accepting through the drain. And the drain leaves
    /// nothing to run on event loops that have stopped (NIO prints an error
    /// for that today and will crash on it in later versions).
    @Test func sigtermClosesTheTLSListenerToo() throws {
        let pki = try PKI()
        defer { try? FileManager.default.removeItem(at: pki.directory) }
        let holding = try HoldingUpstream(holdMilliseconds: 1_500)
        defer { holding.stop() }
        let tlsPort = Ports.free()
        let cluster = try Cluster(workers: 1) { cluster in
            cluster.serverBlock(extra: """
                  tls: { listen: "127.0.0.1:\(tlsPort)", cert: "\(pki.path("server.pem"))", key: "\(pki.path("server.key"))" }
                """) + "\n" + """
                collections:
                  - id: held
                    upstream: { url: "http://127.0.0.1:\(holding.port)", timeout_ms: 5000 }
                    routes: [ { path_prefix: /held } ]
                clients:
                  - id: acme
                    collections: [held]
                    profiles: [ { id: acme-open, auth: { type: none } } ]
                """
        }
        defer { cluster.stop() }
        #expect((try? HTTPClient(port: tlsPort)) != nil, "the TLS listener accepts before the signal")
        let inFlight = try HTTPClient(port: cluster.port)
        try inFlight.send("GET /held/1 HTTP/1.1\r\nHost: t\r\nX-Client-ID: acme\r\nX-Profile-ID: acme-open\r\n\r\n")
        try waitUntil(5, "the request to reach the upstream") { holding.received >= 1 }
        cluster.router.signal(SIGTERM)
        // While that request is still held upstream, the TLS port refuses.
        try waitUntil(1, "the TLS listener to close") { (try? HTTPClient(port: tlsPort)) == nil }
        #expect(holding.received == 1)
        #expect((try? inFlight.readResponse())?.status == 200, "the request in flight still gets its answer")
        try waitUntil(15, "router exit") { !cluster.router.isRunning }
        #expect(cluster.router.process.terminationStatus == 0)
        #expect(!cluster.router.stderr.contains("Cannot schedule tasks"), "nothing is left for the stopped event loops")
    }
}

/// The router's HTTPS client for OIDC discovery and JWKS, against a real
/// TLS server (`openssl s_server -WWW` serving files): the path every
/// production issuer takes, since only loopback may use plain HTTP.
@Suite("OIDC key fetches over HTTPS (real TLS server)", .serialized)
struct HTTPSFetchTests {
    @Test func fetchesOverVerifiedTLSAndRefusesWhatDoesNotVerify() throws {
        let pki = try NativeTLSTests.PKI()
        defer { try? FileManager.default.removeItem(at: pki.directory) }
        let jwks = "{\"keys\":[]}"
        try jwks.write(toFile: pki.path("jwks.json"), atomically: true, encoding: .utf8)
        let port = Ports.free()
        let server = try ChildProcess(
            "/usr/bin/openssl", ["s_server", "-WWW", "-accept", "127.0.0.1:\(port)", "-cert", "server.pem", "-key", "server.key", "-quiet"],
            directory: pki.directory, name: "s_server")
        defer { server.stop() }
        try waitUntil(10, "s_server to listen") { (try? HTTPClient(port: port)) != nil }

        // Trusting our CA (SSL_CERT_FILE is read when the fetcher's
        // context is made), the certificate's IP SAN matches.
        setenv("SSL_CERT_FILE", pki.path("ca.pem"), 1)
        let trusting = try HTTPFetcher()
        unsetenv("SSL_CERT_FILE")
        let document = try trusting.get(try #require(FetchURL("https://127.0.0.1:\(port)/jwks.json")), timeoutMs: 3000)
        #expect(document.status == 200)
        #expect(String(decoding: document.body, as: UTF8.self).contains(jwks))

        // The same server under a name its certificate does not carry.
        let misnamed = #expect(throws: FetchError.self) { try trusting.get(FetchURL("https://localhost:\(port)/jwks.json")!, timeoutMs: 3000) }
        #expect(misnamed?.description.contains("hostname mismatch") == true, "\(String(describing: misnamed))")
        // Without our CA the chain does not verify.
        setenv("SSL_CERT_FILE", pki.path("rogue-ca.pem"), 1)
        let distrusting = try HTTPFetcher()
        unsetenv("SSL_CERT_FILE")
        let untrusted = #expect(throws: FetchError.self) { try distrusting.get(FetchURL("https://127.0.0.1:\(port)/jwks.json")!, timeoutMs: 3000) }
        #expect(untrusted?.description.contains("unable to get local issuer certificate") == true, "\(String(describing: untrusted))")
        // Nothing listening: a clear error within the timeout, not a hang.
        #expect(throws: FetchError.self) { try trusting.get(FetchURL("https://127.0.0.1:\(Ports.free())/jwks.json")!, timeoutMs: 1000) }
    }
}
