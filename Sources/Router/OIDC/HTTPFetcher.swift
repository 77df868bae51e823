import CTLS
import Shared

#if canImport(Glibc)
import Glibc
#endif

/// A response from `HTTPFetcher`.
struct FetchedDocument: Sendable {
    let status: Int
    let headers: [(name: String, value: String)]
    let body: [UInt8]

    func header(_ name: String) -> String? {
        self.headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

struct FetchError: Error, Sendable, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// GET over HTTP/1.1 or HTTPS for the few documents the router fetches
/// itself (OIDC discovery, JWKS): a handful per issuer per hour. Blocking by
/// design, so it runs on a thread pool and never on an event loop; every
/// step is bounded by one overall deadline. TLS is OpenSSL's libssl (1.2+,
/// the system trust store or `SSL_CERT_FILE`, host name verified). This is
/// the one owner of the `SSL_CTX`.
final class HTTPFetcher: @unchecked Sendable {
    static let maxBodyBytes = 1 << 20
    private let tls: OpaquePointer

    init() throws(FetchError) {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw FetchError("cannot create a TLS context") }
        guard pcl_ssl_ctx_min_tls12(ctx) == 1, SSL_CTX_set_default_verify_paths(ctx) == 1 else {
            SSL_CTX_free(ctx)
            throw FetchError("cannot configure the TLS context")
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        self.tls = ctx
    }

    deinit { SSL_CTX_free(self.tls) }

    func get(_ url: FetchURL, timeoutMs: Int) throws(FetchError) -> FetchedDocument {
        try self.request("GET", url, timeoutMs: timeoutMs)
    }

    /// One request on a fresh connection (the CLI's calls to the management
    /// API use this too). Header values must not hold CR or LF.
    func request(
        _ method: String, _ url: FetchURL, headers: [(String, String)] = [], body: [UInt8]? = nil, timeoutMs: Int
    ) throws(FetchError) -> FetchedDocument {
        for (name, value) in headers where (name + value).contains(where: { $0 == "\r" || $0 == "\n" }) {
            throw FetchError("header \(name) holds a line break")
        }
        let deadline = Self.nowMs() + Int64(timeoutMs)
        let fd = try Self.connect(host: url.host, port: url.port, deadline: deadline)
        defer { close(fd) }
        var head = "\(method) \(url.target) HTTP/1.1\r\nHost: \(url.authority)\r\nAccept: application/json\r\nUser-Agent: portcullis\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        let request = Array((head + "\r\n").utf8) + (body ?? [])
        let raw: [UInt8]
        if url.secure {
            raw = try self.exchangeTLS(fd: fd, host: url.host, request: request, deadline: deadline)
        } else {
            raw = try Self.exchangePlain(fd: fd, request: request, deadline: deadline)
        }
        return try Self.parse(raw)
    }

    // MARK: connecting

    private static func connect(host: String, port: Int, deadline: Int64) throws(FetchError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>? = nil
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let list else { throw FetchError("cannot resolve \(host): \(String(cString: gai_strerror(status)))") }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var cursor: UnsafeMutablePointer<addrinfo>? = list
        while let info = cursor {
            cursor = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 { continue }
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            var ok = Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0
            if !ok && errno == EINPROGRESS {
                var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let wait = max(0, deadline - Self.nowMs())
                if poll(&poller, 1, Int32(wait)) == 1 {
                    var error: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                    ok = error == 0
                    if !ok { lastError = String(cString: strerror(error)) }
                } else {
                    lastError = "connect timed out"
                }
            } else if !ok {
                lastError = String(cString: strerror(errno))
            }
            if ok {
                _ = fcntl(fd, F_SETFL, flags)
                return fd
            }
            close(fd)
        }
        throw FetchError("cannot connect to \(host):\(port): \(lastError)")
    }

    /// Bounds the next blocking read or write by what is left of the deadline.
    private static func arm(_ fd: Int32, deadline: Int64) throws(FetchError) {
        let left = deadline - Self.nowMs()
        guard left > 0 else { throw FetchError("timed out") }
        var timeout = timeval(tv_sec: Int(left / 1000), tv_usec: Int((left % 1000) * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    // MARK: plain HTTP

    private static func exchangePlain(fd: Int32, request: [UInt8], deadline: Int64) throws(FetchError) -> [UInt8] {
        var offset = 0
        while offset < request.count {
            try Self.arm(fd, deadline: deadline)
            let n = request[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw FetchError("send failed: \(String(cString: strerror(errno)))") }
            offset += n
        }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            try Self.arm(fd, deadline: deadline)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return out }
            guard n > 0 else { throw FetchError(errno == EAGAIN ? "timed out" : "recv failed: \(String(cString: strerror(errno)))") }
            out.append(contentsOf: chunk[0..<n])
            guard out.count <= Self.maxBodyBytes + 65536 else { throw FetchError("response larger than \(Self.maxBodyBytes) bytes") }
        }
    }

    // MARK: TLS

    private func exchangeTLS(fd: Int32, host: String, request: [UInt8], deadline: Int64) throws(FetchError) -> [UInt8] {
        guard let ssl = SSL_new(self.tls) else { throw FetchError("cannot create a TLS session") }
        defer { SSL_free(ssl) }
        SSL_set_fd(ssl, fd)
        if IPAddress(host) != nil {
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 else { throw FetchError("bad IP \(host)") }
        } else {
            _ = pcl_ssl_set_sni(ssl, host)
            guard SSL_set1_host(ssl, host) == 1 else { throw FetchError("bad host name \(host)") }
        }
        try Self.arm(fd, deadline: deadline)
        guard SSL_connect(ssl) == 1 else {
            let verify = SSL_get_verify_result(ssl)
            let reason = verify != X509_V_OK ? String(cString: X509_verify_cert_error_string(verify)) : Self.sslError()
            throw FetchError("TLS handshake with \(host) failed: \(reason)")
        }
        var offset = 0
        while offset < request.count {
            try Self.arm(fd, deadline: deadline)
            let n = request[offset...].withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
            guard n > 0 else { throw FetchError("TLS write failed: \(Self.sslError())") }
            offset += Int(n)
        }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            try Self.arm(fd, deadline: deadline)
            let n = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 {
                out.append(contentsOf: chunk[0..<Int(n)])
                guard out.count <= Self.maxBodyBytes + 65536 else { throw FetchError("response larger than \(Self.maxBodyBytes) bytes") }
                continue
            }
            let error = SSL_get_error(ssl, n)
            // A close without close_notify is fine here: the body framing
            // (length or chunked) says whether we got everything.
            if error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && errno == 0) { return out }
            if error == SSL_ERROR_SYSCALL && !out.isEmpty && errno != EAGAIN { return out }
            throw FetchError(errno == EAGAIN ? "timed out" : "TLS read failed: \(Self.sslError())")
        }
    }

    private static func sslError() -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return "connection closed" }
        var buffer = [UInt8](repeating: 0, count: 256)
        buffer.withUnsafeMutableBufferPointer { out in
            out.withMemoryRebound(to: CChar.self) { ERR_error_string_n(code, $0.baseAddress, $0.count) }
        }
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }

    // MARK: response

    static func parse(_ raw: [UInt8]) throws(FetchError) -> FetchedDocument {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = raw.firstRange(of: separator) else { throw FetchError("no complete HTTP response head") }
        let lines = String(decoding: raw[..<headEnd.lowerBound], as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusParts = lines.first?.split(separator: " ", maxSplits: 2) ?? []
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw FetchError("malformed status line")
        }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw FetchError("malformed header line") }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...].trimmingASCIIWhitespace())))
        }
        let document = FetchedDocument(status: status, headers: headers, body: [])
        var body = Array(raw[headEnd.upperBound...])
        if document.header("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            body = try Self.dechunk(body)
        } else if let lengthText = document.header("Content-Length") {
            guard let length = Int(lengthText), length >= 0, body.count >= length else { throw FetchError("body shorter than Content-Length") }
            body = Array(body.prefix(length))
        }
        guard body.count <= Self.maxBodyBytes else { throw FetchError("body larger than \(Self.maxBodyBytes) bytes") }
        return FetchedDocument(status: status, headers: headers, body: body)
    }

    private static func dechunk(_ input: [UInt8]) throws(FetchError) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while true {
            guard let lineEnd = input[index...].firstRange(of: [13, 10]) else { throw FetchError("truncated chunked body") }
            let sizeText = String(decoding: input[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingASCIIWhitespace(), radix: 16), size >= 0 else { throw FetchError("bad chunk size") }
            index = lineEnd.upperBound
            if size == 0 { return out }
            guard index + size + 2 <= input.count else { throw FetchError("truncated chunked body") }
            out.append(contentsOf: input[index..<(index + size)])
            index += size + 2
        }
    }

    static func nowMs() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
