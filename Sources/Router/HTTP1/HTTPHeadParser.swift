import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Why a head was refused; each maps to the status the client gets.
enum HTTPHeadError: Error, Equatable {
    /// Malformed syntax (400).
    case malformed(String)
    /// Head larger than the limit, or too many fields (431).
    case tooLarge
    /// Only HTTP/1.0 and HTTP/1.1 are spoken here (505).
    case unsupportedVersion
}

/// Parses HTTP/1.x heads strictly (RFC 9112): CRLF line ends only, a token
/// for every field name with no space before the colon, no obsolete line
/// folding, no control characters in values. Leniency in a proxy is how
/// request smuggling starts, so anything off-grammar is refused.
///
/// Pure and incremental. A head nearly always arrives whole in one read, so
/// the first look parses it line by line in one pass. If that runs out of
/// bytes, the parser switches to finding the end first (hopping from LF to
/// LF, remembering how far it looked, so a head that trickles in is not
/// rescanned from the start) and parses once the end is there.
struct HTTPHeadParser {
    enum Kind {
        case request
        case response
    }

    enum Result {
        case needMore
        /// The head, and how many bytes (including leading blank lines) it took.
        case head(HTTPHead, consumed: Int)
        case invalid(HTTPHeadError)
    }

    static let maxFields = 256

    let kind: Kind
    let maxHeadBytes: Int
    private var scanned = 0
    /// The one-pass look ran out of bytes for this head: find its end first.
    private var fragmented = false

    init(kind: Kind, maxHeadBytes: Int) {
        self.kind = kind
        self.maxHeadBytes = maxHeadBytes
    }

    mutating func reset() {
        self.scanned = 0
        self.fragmented = false
    }

    /// Looks for a complete head at the start of `buffer` without consuming it.
    mutating func parse(_ buffer: ByteBuffer) -> Result {
        if !self.fragmented {
            let kind = self.kind
            let limit = self.maxHeadBytes + 2
            let outcome = buffer.withUnsafeReadableBytes { raw -> Lines in
                let start = Self.headStart(raw)
                // At most the limit's worth: a longer head is refused below
                // by the path that measures it.
                let view = UnsafeRawBufferPointer(rebasing: raw[start..<min(raw.count, start + limit)])
                return Self.lines(view, kind: kind, offset: start)
            }
            switch outcome {
            case .complete(let start, let length, let startLine, let minor, let fields):
                guard let bytes = buffer.getSlice(at: buffer.readerIndex + start, length: length) else { return .needMore }
                return .head(HTTPHead(bytes: bytes, startLine: startLine, minorVersion: minor, fields: fields), consumed: start + length)
            case .failed(let error):
                return .invalid(error)
            case .incomplete:
                self.fragmented = true
            }
        }
        let outcome: (Int, Int)? = buffer.withUnsafeReadableBytes { raw -> (Int, Int)? in
            let start = Self.headStart(raw)
            // The terminator ends in LF: hop from LF to LF with libc's
            // (vectorised) memchr and look back three bytes, from where the
            // last look stopped.
            guard let base = raw.baseAddress else { return nil }
            var index = max(start + 3, self.scanned)
            while index < raw.count, let found = memchr(base + index, 10, raw.count - index) {
                let lf = base.distance(to: UnsafeRawPointer(found))
                if lf >= start + 3 && raw[lf - 1] == 13 && raw[lf - 2] == 10 && raw[lf - 3] == 13 { return (start, lf + 1) }
                index = lf + 1
            }
            self.scanned = max(self.scanned, raw.count)
            return nil
        }
        guard let (start, end) = outcome else {
            return buffer.readableBytes > self.maxHeadBytes + 4 ? .invalid(.tooLarge) : .needMore
        }
        self.scanned = 0
        guard end - start <= self.maxHeadBytes + 2 else { return .invalid(.tooLarge) }
        guard let bytes = buffer.getSlice(at: buffer.readerIndex + start, length: end - start) else { return .needMore }
        let parsed = bytes.withUnsafeReadableBytes { raw in Self.lines(raw, kind: self.kind, offset: 0) }
        switch parsed {
        case .complete(_, _, let startLine, let minor, let fields):
            return .head(HTTPHead(bytes: bytes, startLine: startLine, minorVersion: minor, fields: fields), consumed: end)
        case .failed(let error):
            return .invalid(error)
        case .incomplete:
            // The bytes end in CR LF CR LF, so some line broke off at a CR
            // that no LF follows.
            return .invalid(.malformed("bad line ending"))
        }
    }

    /// What a pass over the lines of a head found.
    private enum Lines {
        /// A whole head: it starts `start` bytes into the buffer and is
        /// `length` bytes long, the CR LF CR LF included; offsets in
        /// `startLine` and `fields` count from its start.
        case complete(start: Int, length: Int, startLine: HTTPHead.StartLine, minor: Int, fields: [HTTPField])
        case failed(HTTPHeadError)
        /// The bytes ran out before the empty line did.
        case incomplete
    }

    /// Parses the head at the start of `raw` line by line, up to and
    /// including the empty line that ends it.
    private static func lines(_ raw: UnsafeRawBufferPointer, kind: Kind, offset: Int) -> Lines {
        let lineEnd: Int
        switch Self.lineEnd(raw, from: 0) {
        case .end(let end): lineEnd = end
        case .none: return .incomplete
        case .bareCR: return .failed(.malformed("bad line ending"))
        }
        let startLine: HTTPHead.StartLine
        let minor: Int
        switch kind {
        case .request:
            guard let parsed = Self.requestLine(raw, end: lineEnd) else { return .failed(.malformed("bad request line")) }
            if case .failure(let error) = parsed { return .failed(error) }
            guard case .success(let line) = parsed else { return .failed(.malformed("bad request line")) }
            startLine = .request(method: line.method, target: line.target)
            minor = line.minor
        case .response:
            guard let line = Self.statusLine(raw, end: lineEnd) else { return .failed(.malformed("bad status line")) }
            startLine = .response(status: line.status, reason: line.reason)
            minor = line.minor
        }

        var fields: [HTTPField] = []
        fields.reserveCapacity(16)
        var index = lineEnd + 2
        while true {
            let end: Int
            switch Self.lineEnd(raw, from: index) {
            case .end(let found): end = found
            case .none: return .incomplete
            case .bareCR: return .failed(.malformed("bad line ending"))
            }
            if end == index {
                // The empty line ending the head.
                return .complete(start: offset, length: end + 2, startLine: startLine, minor: minor, fields: fields)
            }
            let first = raw[index]
            if first == 0x20 || first == 0x09 { return .failed(.malformed("obsolete line folding")) }
            var colon = index
            while colon < end && CharacterClass.isToken(raw[colon]) { colon += 1 }
            guard colon > index, colon < end, raw[colon] == UInt8(ascii: ":") else {
                return .failed(.malformed("bad header field name"))
            }
            var valueStart = colon + 1
            while valueStart < end && (raw[valueStart] == 0x20 || raw[valueStart] == 0x09) { valueStart += 1 }
            var valueEnd = end
            while valueEnd > valueStart && (raw[valueEnd - 1] == 0x20 || raw[valueEnd - 1] == 0x09) { valueEnd -= 1 }
            guard CharacterClass.allFieldValue(raw, valueStart..<valueEnd) else {
                return .failed(.malformed("control character in header value"))
            }
            guard fields.count < Self.maxFields else { return .failed(.tooLarge) }
            fields.append(
                HTTPField(
                    nameStart: Int32(index), nameEnd: Int32(colon), valueStart: Int32(valueStart), valueEnd: Int32(valueEnd),
                    name: FieldName.of(raw, start: index, length: colon - index)))
            index = end + 2
        }
    }

    /// Where the head starts: RFC 9112 §2.2 says to ignore at least one
    /// empty line before a request.
    @inline(__always)
    private static func headStart(_ raw: UnsafeRawBufferPointer) -> Int {
        var start = 0
        while start + 1 < raw.count && raw[start] == 13 && raw[start + 1] == 10 { start += 2 }
        return start
    }

    private enum LineEnd {
        /// Offset of the CR of the CR LF ending the line.
        case end(Int)
        /// No CR LF yet: the line goes on past the bytes at hand.
        case none
        /// A CR followed by anything but LF.
        case bareCR
    }

    /// Where the line that starts at `from` ends. `memchr` finds the CR
    /// (vectorised in libc). A bare LF before it needs no search of its
    /// own: every byte of a line is checked later against its grammar
    /// (token, target, field value), and LF belongs to none of them.
    @inline(__always)
    private static func lineEnd(_ raw: UnsafeRawBufferPointer, from: Int) -> LineEnd {
        guard let base = raw.baseAddress, from < raw.count else { return .none }
        guard let cr = memchr(base + from, 13, raw.count - from) else { return .none }
        let index = base.distance(to: UnsafeRawPointer(cr))
        guard index + 1 < raw.count else { return .none }
        return raw[index + 1] == 10 ? .end(index) : .bareCR
    }

    private struct RequestLine {
        let method: Range<Int>
        let target: Range<Int>
        let minor: Int
    }

    private static func requestLine(_ raw: UnsafeRawBufferPointer, end: Int) -> Swift.Result<RequestLine, HTTPHeadError>? {
        var index = 0
        while index < end && CharacterClass.isToken(raw[index]) { index += 1 }
        guard index > 0, index < end, raw[index] == 0x20 else { return nil }
        let method = 0..<index
        index += 1
        let targetStart = index
        while index < end && CharacterClass.isTargetByte(raw[index]) { index += 1 }
        guard index > targetStart, index < end, raw[index] == 0x20 else { return nil }
        let target = targetStart..<index
        index += 1
        guard end - index == 8 else { return nil }
        guard let minor = Self.version(raw, at: index) else { return .failure(.unsupportedVersion) }
        return .success(RequestLine(method: method, target: target, minor: minor))
    }

    private static func statusLine(_ raw: UnsafeRawBufferPointer, end: Int) -> (status: Int, reason: Range<Int>, minor: Int)? {
        guard end >= 12, let minor = Self.version(raw, at: 0), raw[8] == 0x20 else { return nil }
        var status = 0
        for index in 9..<12 {
            let digit = raw[index]
            guard digit >= 0x30 && digit <= 0x39 else { return nil }
            status = status * 10 + Int(digit - 0x30)
        }
        guard status >= 100 else { return nil }
        if end == 12 { return (status, 12..<12, minor) }
        guard raw[12] == 0x20 else { return nil }
        for index in 13..<end where !CharacterClass.isFieldValue(raw[index]) { return nil }
        return (status, 13..<end, minor)
    }

    /// `HTTP/1.0` or `HTTP/1.1` at `at`; nil for anything else.
    private static func version(_ raw: UnsafeRawBufferPointer, at start: Int) -> Int? {
        let prefix: StaticString = "HTTP/1."
        for index in 0..<7 where raw[start + index] != prefix.utf8Start[index] { return nil }
        switch raw[start + 7] {
        case UInt8(ascii: "0"): return 0
        case UInt8(ascii: "1"): return 1
        default: return nil
        }
    }
}

/// RFC 9110 character classes as bit masks over ASCII: no table in
/// memory, so no lazy-global check per byte (the table version cost a
/// `swift_once` and an array bounds check for every byte of every name).
enum CharacterClass {
    /// tchar (DIGIT, ALPHA and !#$%&'*+-.^_`|~): bit c of the first mask
    /// for c < 64, bit c - 64 of the second for 64 <= c < 128. A unit test
    /// checks all 256 bytes against the RFC's list.
    @inline(__always) static func isToken(_ c: UInt8) -> Bool {
        if c < 64 { return (0x03FF_6CFA_0000_0000 as UInt64) >> UInt64(c) & 1 == 1 }
        if c < 128 { return (0x57FF_FFFF_C7FF_FFFE as UInt64) >> UInt64(c - 64) & 1 == 1 }
        return false
    }

    /// Field content: visible characters, obs-text, space and tab.
    @inline(__always) static func isFieldValue(_ c: UInt8) -> Bool { c >= 0x20 ? c != 0x7F : c == 0x09 }

    /// Whether every byte in `range` is field content. Eight bytes at a
    /// time: a word with no byte below 0x20 and none equal to 0x7F passes
    /// whole (the usual case); any other word is checked byte by byte,
    /// which also settles tabs and the rare false alarm of the word test.
    @inline(__always) static func allFieldValue(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        guard let base = raw.baseAddress, range.lowerBound >= 0, range.upperBound <= raw.count else { return range.isEmpty }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var index = range.lowerBound
        while index + 8 <= range.upperBound {
            let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            // A byte below 0x20 ("has less than" of the bit-twiddling
            // folklore) or a byte equal to 0x7F (a zero byte after xor).
            let below = (word &- ones &* 0x20) & ~word & highs
            let delete = ((word ^ (ones &* 0x7F)) &- ones) & ~(word ^ (ones &* 0x7F)) & highs
            if below | delete != 0 {
                for offset in 0..<8 where !self.isFieldValue(raw[index + offset]) { return false }
            }
            index += 8
        }
        while index < range.upperBound {
            if !self.isFieldValue(raw[index]) { return false }
            index += 1
        }
        return true
    }

    /// Request targets are visible ASCII only.
    @inline(__always) static func isTargetByte(_ c: UInt8) -> Bool { c > 0x20 && c < 0x7F }
}
