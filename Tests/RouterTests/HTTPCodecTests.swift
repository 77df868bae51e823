import Foundation
import NIOCore
import Shared
import Testing

@testable import Router
@testable import Shared

private func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

private func parseRequest(_ text: String, max: Int = 8192) -> HTTPHeadParser.Result {
    var parser = HTTPHeadParser(kind: .request, maxHeadBytes: max)
    return parser.parse(buffer(text))
}

private func head(_ text: String) throws -> HTTPHead {
    guard case .head(let head, _) = parseRequest(text) else {
        Issue.record("expected a head for \(text.debugDescription)")
        throw HTTPHeadError.malformed("test")
    }
    return head
}

@Suite("HTTP/1.1 head parser")
struct HTTPHeadParserTests {
    @Test func parsesARequestHead() throws {
        let text = "GET /orders/1?x=2 HTTP/1.1\r\nHost: a\r\nX-Client-ID:  acme \r\nEmpty:\r\n\r\nBODY"
        guard case .head(let head, let consumed) = parseRequest(text) else {
            Issue.record("no head")
            return
        }
        #expect(consumed == text.utf8.count - 4)
        #expect(head.method == "GET")
        #expect(head.target == "/orders/1?x=2")
        #expect(head.minorVersion == 1)
        #expect(head.fields.count == 3)
        #expect(head.name(head.fields[1]) == "X-Client-ID")
        #expect(head.value(head.fields[1]) == "acme")
        #expect(head.value(head.fields[2]) == "")
    }

    @Test func tokenCharactersAreExactlyRFC9110s() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for byte in 0...255 {
            #expect(CharacterClass.isToken(UInt8(byte)) == tchar.contains(UInt8(byte)), "byte \(byte)")
        }
    }

    @Test func fieldValuesAreCheckedAtEveryOffsetOfALongValue() {
        // The value check reads eight bytes at a time: put each kind of
        // byte at every position of a value longer than two words.
        for position in 0..<21 {
            for (byte, allowed) in [(UInt8(0x7F), false), (0x00, false), (0x0A, false), (0x1F, false), (0x09, true), (0x80, true), (0xFF, true)] {
                var value = [UInt8](repeating: UInt8(ascii: "v"), count: 21)
                value[position] = byte
                // A tab at either end is optional whitespace, not part of the value.
                let bytes = Array("GET / HTTP/1.1\r\nX-A: ".utf8) + value + Array("\r\n\r\n".utf8)
                var parser = HTTPHeadParser(kind: .request, maxHeadBytes: 8192)
                let result = parser.parse(ByteBuffer(bytes: bytes))
                switch result {
                case .head(let head, _):
                    #expect(allowed, "byte \(byte) at \(position) accepted")
                    if byte != 0x09 { #expect(Int(head.fields[0].valueEnd - head.fields[0].valueStart) == 21) }
                case .invalid(.malformed):
                    #expect(!allowed, "byte \(byte) at \(position) refused")
                default:
                    Issue.record("byte \(byte) at \(position): \(result)")
                }
            }
        }
    }

    @Test func refusesBareLineEndsAnywhereInTheHead() {
        for text in [
            "GET / HTTP/1.1\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", "GET / HTTP/1.1\r\nHo\nst: a\r\n\r\n",
        ] {
            guard case .invalid(.malformed) = parseRequest(text) else {
                Issue.record("accepted \(text.debugDescription)")
                continue
            }
        }
    }

    @Test func findsTheHeadWhateverTheSegmentation() {
        let text = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
        let bytes = Array(text.utf8)
        for split in 1..<bytes.count {
            var parser = HTTPHeadParser(kind: .request, maxHeadBytes: 8192)
            var buffer = ByteBuffer(bytes: bytes[..<split])
            if case .head = parser.parse(buffer) {
                Issue.record("head reported before it was complete (split \(split))")
            }
            buffer.writeBytes(bytes[split...])
            guard case .head(_, let consumed) = parser.parse(buffer) else {
                Issue.record("head not found after split \(split)")
                continue
            }
            #expect(consumed == bytes.count)
        }
    }

    @Test func aParserReusedAfterAFragmentedHeadParsesTheNextOneWhole() {
        var parser = HTTPHeadParser(kind: .request, maxHeadBytes: 8192)
        let first = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        let bytes = Array(first.utf8)
        guard case .needMore = parser.parse(ByteBuffer(bytes: bytes[..<20])) else {
            Issue.record("a partial head was not needMore")
            return
        }
        guard case .head(_, let consumed) = parser.parse(ByteBuffer(bytes: bytes)), consumed == bytes.count else {
            Issue.record("the completed head was not found")
            return
        }
        parser.reset()
        // The next head, whole, pipelined behind it and with leading blank lines.
        let second = "\r\nPOST /2 HTTP/1.1\r\nContent-Length: 1\r\n\r\nxGET /3 HTTP/1.1\r\n\r\n"
        guard case .head(let head, let used) = parser.parse(buffer(second)) else {
            Issue.record("the second head was not found")
            return
        }
        #expect(head.method == "POST" && head.target == "/2")
        #expect(used == second.utf8.count - "xGET /3 HTTP/1.1\r\n\r\n".utf8.count)
        #expect(head.name(head.fields[0]) == "Content-Length" && head.value(head.fields[0]) == "1")
    }

    @Test func aBrokenLineIsRefusedBeforeTheHeadIsComplete() {
        // No need to wait for the end: the line that is there is already wrong.
        for text in ["GET / HTTP/1.1\r\nHost : a\r\nX-More: ", "GET / HTTP/1.1\r\nX: a\rb", "GET /a b HTTP/1.1\r\nHo"] {
            guard case .invalid(.malformed) = parseRequest(text) else {
                Issue.record("not refused: \(text.debugDescription)")
                continue
            }
        }
    }

    @Test func skipsLeadingEmptyLines() throws {
        #expect(try head("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").method == "GET")
    }

    @Test func refusesHeadsOverTheLimit() {
        let big = "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 9000) + "\r\n\r\n"
        guard case .invalid(.tooLarge) = parseRequest(big) else {
            Issue.record("expected tooLarge")
            return
        }
        // Without a terminator in sight, a head that has outgrown the limit
        // is refused as soon as it does, not when the client stops.
        guard case .invalid(.tooLarge) = parseRequest("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000)) else {
            Issue.record("expected tooLarge for an unterminated head")
            return
        }
        guard case .needMore = parseRequest("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 100)) else {
            Issue.record("expected needMore")
            return
        }
    }

    @Test func refusesTooManyFields() {
        let fields = (0..<300).map { "X-\($0): v\r\n" }.joined()
        guard case .invalid(.tooLarge) = parseRequest("GET / HTTP/1.1\r\n" + fields + "\r\n", max: 65536) else {
            Issue.record("expected tooLarge")
            return
        }
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",  // space before colon (smuggling vector)
        "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",  // obs-fold
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\u{01}b\r\n\r\n",  // control character
        "GET / HTTP/1.1\nHost: a\r\n\r\n",  // bare LF
        "GET /\u{7F} HTTP/1.1\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GET / HTTX/1.1\r\n\r\n",
        "GET /\r\n\r\n",
        "\u{16}\u{03}\u{01}\u{02}\u{00}\u{01}\u{00}\u{01}\u{fc}\u{03}\u{03}\r\n\r\n",  // a TLS hello
    ])
    func refusesMalformedHeads(text: String) {
        guard case .invalid = parseRequest(text) else {
            Issue.record("accepted \(text.debugDescription)")
            return
        }
    }

    @Test func refusesHTTP2AndOtherVersions() {
        guard case .invalid = parseRequest("GET / HTTP/2.0\r\n\r\n") else {
            Issue.record("accepted HTTP/2.0")
            return
        }
        guard case .invalid = parseRequest("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") else {
            Issue.record("accepted the HTTP/2 preface")
            return
        }
    }

    @Test func parsesResponseHeads() throws {
        var parser = HTTPHeadParser(kind: .response, maxHeadBytes: 8192)
        guard case .head(let head, _) = parser.parse(buffer("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")) else {
            Issue.record("no response head")
            return
        }
        #expect(head.status == 404)
        guard case .response(_, let reason) = head.startLine else { return }
        #expect(head.string(reason) == "Not Found")
    }
}

@Suite("Body framing (RFC 9112 §6) and chunked decoding")
struct BodyFramingTests {
    @Test func requestFramingCases() throws {
        #expect(try head("GET / HTTP/1.1\r\n\r\n").requestFraming() == .success(.none))
        #expect(try head("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").requestFraming() == .success(.none))
        #expect(try head("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").requestFraming() == .success(.length(12)))
        #expect(try head("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").requestFraming() == .success(.length(5)))
        #expect(try head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").requestFraming() == .success(.chunked))
        #expect(try head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").requestFraming() == .success(.chunked))
    }

    @Test(arguments: [
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
    ])
    func refusesAmbiguousFraming(text: String) throws {
        guard case .failure = try head(text).requestFraming() else {
            Issue.record("accepted \(text.debugDescription)")
            return
        }
    }

    private func decode(_ body: String, splitEvery step: Int) -> (String, ChunkedFramer.Outcome) {
        var framer = ChunkedFramer()
        var data: [UInt8] = []
        let bytes = Array(body.utf8)
        var consumedTotal = 0
        var offset = 0
        var last = ChunkedFramer.Outcome.needMore
        while offset < bytes.count {
            let piece = Array(bytes[offset..<min(offset + step, bytes.count)])
            last = piece.withUnsafeBytes { raw in
                framer.consume(raw) { range in data.append(contentsOf: raw[range]) }
            }
            if case .finished(let consumed) = last {
                consumedTotal += consumed
                break
            }
            if case .invalid = last { break }
            consumedTotal += piece.count
            offset += step
        }
        if case .finished = last { last = .finished(consumed: consumedTotal) }
        return (String(decoding: data, as: UTF8.self), last)
    }

    @Test(arguments: [1, 2, 3, 7, 1000])
    func decodesChunkedBodiesInAnySegmentation(step: Int) {
        let wire = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT"
        let (data, outcome) = decode(wire, splitEvery: step)
        #expect(data == "hello world")
        #expect(outcome == .finished(consumed: wire.utf8.count - 4))
    }

    @Test(arguments: [
        "x\r\n", "5\r\nhello\r\nzz\r\n", "5\r\nhelloXX", "5\nhello\r\n", "fffffffffffffffff\r\n", "-1\r\n",
    ])
    func refusesMalformedChunks(wire: String) {
        let (_, outcome) = decode(wire, splitEvery: 1000)
        guard case .invalid = outcome else {
            Issue.record("accepted \(wire.debugDescription): \(outcome)")
            return
        }
    }
}

@Suite("Request target and identity headers")
struct RequestTargetTests {
    @Test func originFormAndAbsoluteForm() {
        #expect(RequestTarget.originForm("/a/b?c") == "/a/b?c")
        #expect(RequestTarget.originForm("http://example.com/a?b") == "/a?b")
        #expect(RequestTarget.originForm("HTTP://example.com") == "/")
        #expect(RequestTarget.originForm("http://example.com?q") == "/?q")
        #expect(RequestTarget.originForm("*") == nil)
        #expect(RequestTarget.originForm("example.com:443") == nil)
    }

    @Test(arguments: ["/orders/../admin", "/orders/./x", "/orders/%2e%2e/admin", "/orders/%2E/x", "/..", "/a/.%2e/b"])
    func refusesDotSegments(path: String) {
        #expect(RequestTarget.hasDotSegment(path))
    }

    @Test(arguments: ["/orders/1", "/orders/..x", "/orders/.well-known", "/a?x=/../", "/file.json", "/%41"])
    func acceptsOrdinaryPaths(path: String) {
        #expect(!RequestTarget.hasDotSegment(path))
    }

    @Test func readsIdentityHeadersAndFlagsDuplicates() throws {
        let parsed = try head(
            "GET / HTTP/1.1\r\nx-client-id: acme\r\nX-PROFILE-ID: p1\r\nAuthorization: Bearer t\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n")
        let identity = RequestIdentity(parsed)
        #expect(parsed.string(identity.clientID) == "acme")
        #expect(parsed.string(identity.profileID) == "p1")
        #expect(parsed.string(identity.authorization) == "Bearer t")
        #expect(identity.forwardedForValues(in: parsed) == ["1.2.3.4", "5.6.7.8"])
        #expect(identity.duplicate == nil)
        let none = RequestIdentity(try head("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(none.clientID.isEmpty && none.profileID.isEmpty && none.authorization.isEmpty && none.requestID == nil)
        let twice = RequestIdentity(try head("GET / HTTP/1.1\r\nX-Client-ID: a\r\nX-Client-ID: b\r\n\r\n"))
        #expect(twice.duplicate == "X-Client-ID")
    }
}

@Suite("Head writer")
struct HeadWriterTests {
    static let route = UpstreamRoute(
        collectionID: "orders", url: UpstreamURL("http://127.0.0.1:9000/base")!, timeoutMs: 1000, keepAuthorization: false,
        credential: ResolvedCredential(header: "X-Backend-Key", value: "s3cret"))

    private func upstream(_ text: String, trusted: Bool = false, route: UpstreamRoute = Self.route) throws -> String {
        let parsed = try head(text)
        var out = ByteBuffer()
        HeadWriter.upstreamRequest(
            parsed, target: UpstreamTarget(path: .text("/x"), stripPrefixBytes: 0), route: route,
            identity: ForwardingIdentity(
                requestID: .given("rid-1"), clientID: .text("acme"), profileID: .text("p1"), peer: IPAddress("10.1.1.1"), peerTrusted: trusted),
            into: &out)
        return String(buffer: out)
    }

    @Test func rewritesTheRequestForTheUpstream() throws {
        let text = try upstream(
            "GET /x HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer secret-token\r\nX-Consumer-Client-ID: evil\r\n"
                + "X-Request-ID: client-chosen\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\n"
                + "X-Backend-Key: forged\r\nX-Forwarded-For: 6.6.6.6\r\nAccept: */*\r\n\r\n")
        #expect(text.hasPrefix("GET /base/x HTTP/1.1\r\n"))
        #expect(text.hasSuffix("\r\n\r\n"))
        #expect(!text.contains("secret-token"))
        #expect(!text.contains("evil"))
        #expect(!text.contains("client-chosen"))
        #expect(!text.contains("X-Drop"))
        #expect(!text.contains("Keep-Alive"))
        #expect(!text.contains("forged"))
        #expect(!text.contains("6.6.6.6"))
        #expect(text.contains("Accept: */*\r\n"))
        #expect(text.contains("Host: 127.0.0.1:9000\r\n"))
        #expect(text.contains("X-Forwarded-For: 10.1.1.1\r\n"))
        #expect(text.contains("X-Forwarded-Host: gw.example\r\n"))
        #expect(text.contains("X-Request-ID: rid-1\r\n"))
        #expect(text.contains("X-Consumer-Client-ID: acme\r\n"))
        #expect(text.contains("X-Consumer-Profile-ID: p1\r\n"))
        #expect(text.contains("X-Backend-Key: s3cret\r\n"))
    }

    @Test func consumerHeadersAreCopiedFromTheRequestHead() throws {
        let parsed = try head("GET /orders/1?q HTTP/1.1\r\nX-Client-ID: acme\r\nX-Profile-ID: p-1\r\nHost: gw\r\n\r\n")
        let identity = RequestIdentity(parsed)
        guard case .request(_, let target) = parsed.startLine else { throw HTTPHeadError.malformed("test") }
        var out = ByteBuffer()
        HeadWriter.upstreamRequest(
            parsed, target: UpstreamTarget(path: .head(target), stripPrefixBytes: 7), route: Self.route,
            identity: ForwardingIdentity(
                requestID: .generated(prefix: 0xABCD, counter: 3), clientID: .head(identity.clientID),
                profileID: .head(identity.profileID), peer: nil, peerTrusted: false),
            into: &out)
        let text = String(buffer: out)
        #expect(text.hasPrefix("GET /base/1?q HTTP/1.1\r\n"))
        #expect(text.contains("X-Consumer-Client-ID: acme\r\n"))
        #expect(text.contains("X-Consumer-Profile-ID: p-1\r\n"))
        #expect(text.contains("X-Request-ID: 000000000000abcd0000000000000003\r\n"))
    }

    @Test func madeRequestIDsAreThirtyTwoHexDigitsAndUnique() {
        let generator = RequestIDGenerator()
        let ids = (0..<1000).map { _ in generator.make() }
        #expect(Set(ids.map(\.string)).count == 1000)
        for id in ids.prefix(3) {
            #expect(id.utf8Count == 32)
            #expect(id.string.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
            #expect(id.withBytes { Array($0) } == Array(id.string.utf8))
        }
        #expect(RequestID.given("client-chosen").string == "client-chosen")
        #expect(RequestID.generated(prefix: 0x0123_4567_89AB_CDEF, counter: 0xFEDC_BA98_7654_3210).string == "0123456789abcdeffedcba9876543210")
        #expect(RequestID.generated(prefix: 0, counter: 10).string == "0000000000000000000000000000000a")
        #expect(RequestIDGenerator.isAcceptable(UnsafeRawBufferPointer(start: nil, count: 0)) == false)
    }

    @Test func extendsForwardedForOnlyFromTrustedPeers() throws {
        let text = try upstream("GET /x HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n", trusted: true)
        #expect(text.contains("X-Forwarded-For: 203.0.113.9, 10.1.1.1\r\n"))
    }

    @Test func keepsAuthorizationWhenTheCollectionSaysSo() throws {
        let keep = UpstreamRoute(collectionID: "c", url: UpstreamURL("http://up")!, timeoutMs: 1000, keepAuthorization: true, credential: nil)
        let text = try upstream("GET /x HTTP/1.1\r\nAuthorization: Bearer abc\r\n\r\n", route: keep)
        #expect(text.contains("Authorization: Bearer abc\r\n"))
        #expect(text.contains("Host: up\r\n"))
    }

    @Test func keptFieldsPassAsReceivedAroundDroppedOnes() throws {
        var parser = HTTPHeadParser(kind: .response, maxHeadBytes: 8192)
        let upstream = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nA: 1\r\nB:2\r\nKeep-Alive: x\r\nX-Hop: y\r\n"
            + "C:  3  \r\nD: 4\r\nX-Request-ID: up\r\n\r\n"
        guard case .head(let response, _) = parser.parse(ByteBuffer(string: upstream)) else {
            Issue.record("no head")
            return
        }
        var out = ByteBuffer()
        HeadWriter.clientResponse(
            response, clientMinorVersion: 1, requestID: .given("r-1"), rateLimitPolicy: "", rateLimit: nil, dropTransferEncoding: false,
            connection: .none, into: &out)
        #expect(String(buffer: out) == "HTTP/1.1 200 OK\r\nA: 1\r\nB:2\r\nC:  3  \r\nD: 4\r\nX-Request-ID: r-1\r\n\r\n")
        // Nothing kept, and everything kept.
        for (text, fields) in [("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", ""), ("HTTP/1.1 204 No Content\r\nE: 5\r\n\r\n", "E: 5\r\n")] {
            var parser = HTTPHeadParser(kind: .response, maxHeadBytes: 8192)
            guard case .head(let head, _) = parser.parse(ByteBuffer(string: text)) else { continue }
            var out = ByteBuffer()
            HeadWriter.clientResponse(
                head, clientMinorVersion: 1, requestID: .given("r"), rateLimitPolicy: "", rateLimit: nil, dropTransferEncoding: false,
                connection: .none, into: &out)
            #expect(String(buffer: out) == "HTTP/1.1 204 No Content\r\n" + fields + "X-Request-ID: r\r\n\r\n")
        }
    }

    @Test func localResponsesCarryTheSpecBody() {
        var out = ByteBuffer()
        var error = GatewayError(405, .methodNotAllowed, .methodNotAllowed, "no \"DELETE\" here")
        error.allow = "GET, POST"
        HeadWriter.localResponse(error, requestID: .given("rid-9"), clientMinorVersion: 1, connection: .none, into: &out)
        let text = String(buffer: out)
        #expect(text.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"))
        #expect(text.contains("Allow: GET, POST\r\n"))
        #expect(text.contains("X-Request-ID: rid-9\r\n"))
        let body = text.components(separatedBy: "\r\n\r\n").last ?? ""
        #expect(body == #"{"error":"method_not_allowed","message":"no \"DELETE\" here","request_id":"rid-9"}"#)
        #expect(text.contains("Content-Length: \(body.utf8.count)\r\n"))
    }

    private func target(_ path: String, basePath: String, stripPrefixBytes: Int) -> String {
        var out = ByteBuffer()
        out.writeBytes(reserving: path.utf8.count + basePath.utf8.count + 1) { writer in
            var path = path
            path.withUTF8 {
                UpstreamTarget.write(path: UnsafeRawBufferPointer($0), basePath: basePath, stripPrefixBytes: stripPrefixBytes, into: &writer)
            }
        }
        return String(buffer: out)
    }

    @Test func targetStripsPrefixesUnderTheBasePath() {
        #expect(self.target("/status/200?x", basePath: "", stripPrefixBytes: 7) == "/200?x")
        #expect(self.target("/status", basePath: "", stripPrefixBytes: 7) == "/")
        #expect(self.target("/status?q", basePath: "/b", stripPrefixBytes: 7) == "/b/?q")
        #expect(self.target("/orders/1", basePath: "/api", stripPrefixBytes: 0) == "/api/orders/1")
    }
}

@Suite("Decision log records")
struct DecisionRecordTests {
    @Test func oneJSONLineWithEveryFieldAndNoQueryString() {
        let record = DecisionRecord(
            unixMillis: 1_767_225_600_123, requestID: "r\"1", clientID: "acme", profileID: "p1", authType: "token",
            policyID: "standard", collection: "orders", method: "GET", path: "/orders/1?api_key=SECRET", status: 429,
            reason: "rate_limit", worker: 1, latencyMicros: 1234)
        let line = record.jsonLine()
        #expect(line == #"{"time":"2026-01-01T00:00:00.123Z","request_id":"r\"1","client_id":"acme","profile_id":"p1","auth_type":"token","policy_id":"standard","collection":"orders","method":"GET","path":"/orders/1","status":429,"reason":"rate_limit","worker":1,"latency_ms":1.234}"# + "\n")
        #expect(!line.contains("SECRET"))
    }
}

@Suite("Field names")
struct FieldNameTests {
    /// Every name the gateway acts on, in odd case, next to near misses of
    /// the same length: the parser's one recognition must equal a plain
    /// case-insensitive comparison.
    @Test func parserRecognisesEachNameWhateverItsCase() throws {
        let known: [(String, FieldName)] = [
            ("Host", .host), ("CONNECTION", .connection), ("keep-Alive", .keepAlive), ("TE", .te), ("Trailer", .trailer),
            ("Upgrade", .upgrade), ("Proxy-Connection", .proxyConnection), ("Proxy-Authenticate", .proxyAuthenticate),
            ("Proxy-Authorization", .proxyAuthorization), ("Transfer-Encoding", .transferEncoding),
            ("Content-Length", .contentLength), ("Expect", .expect), ("Authorization", .authorization),
            ("X-Client-ID", .xClientID), ("x-profile-id", .xProfileID), ("X-Request-Id", .xRequestID),
            ("X-Forwarded-For", .xForwardedFor), ("X-Forwarded-Host", .xForwardedHost), ("X-Forwarded-Proto", .xForwardedProto),
            ("RateLimit", .rateLimit), ("RateLimit-Policy", .rateLimitPolicy),
            ("Strict-Transport-Security", .strictTransportSecurity), ("X-SSL-Client-S-DN", .xSSLClientSubject),
            ("X-SSL-Client-Verify", .xSSLClientVerify), ("X-SSL-Client-Fingerprint", .xSSLClientFingerprint),
            ("X-Forwarded-Client-Cert", .xForwardedClientCert), ("X-Consumer-Client-ID", .xConsumer), ("x-consumer-x", .xConsumer),
            // Near misses: same lengths, one byte off, or a bare prefix.
            ("Hosts", .other), ("Hist", .other), ("Connectiom", .other), ("X-Client-IE", .other), ("Authorisation", .other),
            ("Content-Lengtg", .other), ("X-Consumer-", .other), ("X-Consumer", .other), ("Y-Consumer-Id", .other),
            ("Transfer_Encoding", .other), ("TF", .other),
        ]
        var text = "GET / HTTP/1.1\r\n"
        for (name, _) in known { text += "\(name): v\r\n" }
        text += "\r\n"
        var parser = HTTPHeadParser(kind: .request, maxHeadBytes: 8192)
        guard case .head(let head, _) = parser.parse(ByteBuffer(string: text)) else {
            Issue.record("head not parsed")
            return
        }
        #expect(head.fields.count == known.count)
        for (field, (name, expected)) in zip(head.fields, known) {
            #expect(field.name == expected, "\(name)")
            #expect(head.name(field) == name)
        }
    }
}
