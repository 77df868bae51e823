import Foundation
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// A real local OpenID provider for the tests: an HTTP/1.1 server on
/// loopback serving a discovery document and a JWKS made from keys the test
/// generates, able to rotate keys and to go down. It signs ID tokens with
/// its current key. Counts JWKS fetches, so tests can assert the gateway
/// does not hammer it.
final class OIDCIssuer: @unchecked Sendable {
    struct SigningKey {
        let kid: String
        let key: AsymmetricKey
        let alg: JWSAlgorithm
    }

    let port: Int
    var issuer: String { "http://127.0.0.1:\(self.port)/realms/test" }
    private let listener: Int32
    private let lock = NSLock()
    private var keys: [SigningKey]
    private var jwksFetches = 0
    private var failing = false
    private var stopped = false
    private let thread: Thread

    init(keys: [SigningKey]) throws {
        self.keys = keys
        let (fd, port) = try Ports.listen()
        self.port = port
        self.listener = fd
        let box = WeakBox()
        self.thread = Thread { box.issuer?.serve() }
        box.issuer = self
        self.thread.start()
    }

    private final class WeakBox: @unchecked Sendable { weak var issuer: OIDCIssuer? }

    deinit { self.stop() }

    func stop() {
        self.lock.lock()
        let wasStopped = self.stopped
        self.stopped = true
        self.lock.unlock()
        if !wasStopped { shutdown(self.listener, Int32(SHUT_RDWR)) }
    }

    /// Replaces the published keys (a rotation).
    func publish(_ keys: [SigningKey]) {
        self.lock.lock()
        self.keys = keys
        self.lock.unlock()
    }

    /// While true every request is answered 503: the IdP is down.
    func setFailing(_ value: Bool) {
        self.lock.lock()
        self.failing = value
        self.lock.unlock()
    }

    var fetches: Int {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.jwksFetches
    }

    /// An ID token signed by `key`.
    func token(_ key: SigningKey, audience: String = "portcullis", claims extra: [String: Any] = [:], now: Int = Int(Date().timeIntervalSince1970)) throws -> String {
        var claims: [String: Any] = ["iss": self.issuer, "aud": audience, "sub": "user-1", "iat": now, "exp": now + 300]
        claims.merge(extra) { $1 }
        let header = "{\"alg\":\"\(key.alg.rawValue)\",\"kid\":\"\(key.kid)\",\"typ\":\"JWT\"}"
        let body = String(decoding: try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]), as: UTF8.self)
        return try JWSMinter.token(headerJSON: header, claimsJSON: body) { try key.key.sign(key.alg, message: $0) }
    }

    private func serve() {
        while true {
            let client = accept(self.listener, nil, nil)
            if client < 0 {
                self.lock.lock()
                let stopped = self.stopped
                self.lock.unlock()
                if stopped || errno != EINTR { break }
                continue
            }
            self.answer(client)
            close(client)
        }
        close(self.listener)
    }

    private func answer(_ fd: Int32) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !request.suffix(4).elementsEqual([13, 10, 13, 10]) && request.count < 65536 {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            request.append(contentsOf: chunk[0..<n])
        }
        let line = String(decoding: request.prefix { $0 != 13 }, as: UTF8.self)
        let path = line.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        self.lock.lock()
        let failing = self.failing
        let keys = self.keys
        if path.hasSuffix("/jwks") { self.jwksFetches += 1 }
        self.lock.unlock()
        let (status, body): (String, String)
        if failing {
            (status, body) = ("503 Service Unavailable", "{\"error\":\"down\"}")
        } else if path == "/realms/test/.well-known/openid-configuration" {
            (status, body) = ("200 OK", "{\"issuer\":\"\(self.issuer)\",\"jwks_uri\":\"\(self.issuer)/jwks\",\"id_token_signing_alg_values_supported\":[\"RS256\",\"ES256\"]}")
        } else if path == "/realms/test/jwks" {
            (status, body) = ("200 OK", "{\"keys\":[\(keys.map { $0.key.publicJWK(kid: $0.kid, alg: $0.alg) }.joined(separator: ","))]}")
        } else {
            (status, body) = ("404 Not Found", "{}")
        }
        let response = "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nCache-Control: public, max-age=300\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        _ = response.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    }
}
