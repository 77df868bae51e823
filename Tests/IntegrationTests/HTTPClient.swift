import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct HTTPResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        self.headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    func headers(named name: String) -> [String] {
        self.headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }

    var text: String { String(decoding: self.body, as: UTF8.self) }
    var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(self.body)) as? [String: Any] }

    /// The demo upstream's echo: request headers as [[name, value]].
    var echoedHeaders: [(String, String)] {
        (self.json?["headers"] as? [[String]] ?? []).compactMap { $0.count == 2 ? ($0[0], $0[1]) : nil }
    }

    func echoed(_ name: String) -> [String] {
        self.echoedHeaders.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }
}

/// A blocking HTTP/1.1 client on a raw socket, so tests control every byte
/// (pipelining, broken framing, half-sent heads). Every read has a timeout:
/// a test fails, it never hangs.
final class HTTPClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects on a descriptor that only this object closes. The socket is
    /// made and connected before the object exists: a throwing class init
    /// that closed the descriptor itself would close it a second time in
    /// deinit, possibly after another thread reused the number.
    init(port: Int, timeoutSeconds: Int = 10, source: String? = nil) throws {
        self.fd = try Self.connect(port: port, timeoutSeconds: timeoutSeconds, source: source)
    }

    private static func connect(port: Int, timeoutSeconds: Int, source: String?) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket failed") }
        if let source {
            // Any 127/8 address is loopback on Linux: a second source
            // address stands in for a proxy host.
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                let error = errno
                close(fd)
                throw HarnessError("bind to \(source) failed: errno \(error)")
            }
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let error = errno
            close(fd)
            throw HarnessError("connect to 127.0.0.1:\(port) failed: errno \(error)")
        }
        return fd
    }

    deinit { close(self.fd) }

    static func request(port: Int, _ text: String, head: Bool = false) throws -> HTTPResponse {
        let client = try HTTPClient(port: port)
        try client.send(text)
        return try client.readResponse(head: head)
    }

    func send(_ text: String) throws { try self.send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw HarnessError("send failed: errno \(errno)") }
            offset += n
        }
    }

    /// Reads more bytes; false at end of stream.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { throw HarnessError("recv failed or timed out: errno \(errno)") }
        if n == 0 { return false }
        self.buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// True when the server closes the connection (reads EOF) before the
    /// timeout, discarding anything it sent first.
    func readUntilClosed() -> Bool {
        while true {
            guard let more = try? self.fill() else { return false }
            if !more { return true }
        }
    }

    private func take(_ count: Int) -> [UInt8] {
        let out = Array(self.buffer[0..<count])
        self.buffer.removeFirst(count)
        return out
    }

    private func line() throws -> String {
        while true {
            if let index = self.buffer.firstIndex(of: 10), index > 0, self.buffer[index - 1] == 13 {
                let bytes = self.take(index + 1)
                return String(decoding: bytes.dropLast(2), as: UTF8.self)
            }
            guard try self.fill() else { throw HarnessError("connection closed mid-line") }
        }
    }

    func readResponse(head: Bool = false) throws -> HTTPResponse {
        var statusLine = try self.line()
        var status = 0
        var headers: [(String, String)] = []
        while true {
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, let code = Int(parts[1]) else { throw HarnessError("bad status line \(statusLine)") }
            status = code
            headers = []
            while true {
                let line = try self.line()
                if line.isEmpty { break }
                guard let colon = line.firstIndex(of: ":") else { throw HarnessError("bad header \(line)") }
                headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            // Skip interim 1xx responses.
            if (100..<200).contains(status) && status != 101 {
                statusLine = try self.line()
                continue
            }
            break
        }
        var response = HTTPResponse(status: status, headers: headers, body: [])
        if head || status == 204 || status == 304 { return response }
        if let te = response.header("transfer-encoding"), te.lowercased().contains("chunked") {
            while true {
                let sizeLine = try self.line()
                guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else { throw HarnessError("bad chunk size \(sizeLine)") }
                if size == 0 {
                    while try !self.line().isEmpty {}
                    break
                }
                while self.buffer.count < size + 2 { guard try self.fill() else { throw HarnessError("closed mid-chunk") } }
                response.body += self.take(size)
                _ = self.take(2)
            }
        } else if let length = response.header("content-length").flatMap({ Int($0) }) {
            while self.buffer.count < length { guard try self.fill() else { throw HarnessError("closed mid-body") } }
            response.body = self.take(length)
        } else {
            while try self.fill() {}
            response.body = self.buffer
            self.buffer = []
        }
        return response
    }
}
