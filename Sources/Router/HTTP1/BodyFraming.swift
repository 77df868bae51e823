/// How a message body is delimited (RFC 9112 §6).
enum BodyFraming: Equatable {
    case none
    case length(Int)
    case chunked
    /// Responses only: the body runs until the upstream closes.
    case untilClose
}

enum FramingError: Error, Equatable {
    case malformed(String)
    /// A transfer coding we do not implement (501).
    case unsupportedCoding
}

extension HTTPHead {
    /// Request framing, refusing every ambiguity a front proxy and its
    /// upstream could read differently (request smuggling): both
    /// Transfer-Encoding and Content-Length, differing Content-Lengths,
    /// codings other than a lone `chunked`, and Transfer-Encoding in HTTP/1.0.
    func requestFraming() -> Result<BodyFraming, FramingError> {
        var contentLength: Int? = nil
        var transferEncoding: [HTTPField] = []
        for field in self.fields {
            if field.name == .contentLength {
                guard let value = self.contentLengthValue(field) else { return .failure(.malformed("bad Content-Length")) }
                if let existing = contentLength, existing != value { return .failure(.malformed("conflicting Content-Length")) }
                contentLength = value
            } else if field.name == .transferEncoding {
                transferEncoding.append(field)
            }
        }
        if !transferEncoding.isEmpty {
            guard contentLength == nil else { return .failure(.malformed("both Transfer-Encoding and Content-Length")) }
            guard self.minorVersion == 1 else { return .failure(.malformed("Transfer-Encoding in HTTP/1.0")) }
            guard transferEncoding.count == 1, self.valueIsExactly(transferEncoding[0], "chunked") else {
                return .failure(.unsupportedCoding)
            }
            return .success(.chunked)
        }
        if let contentLength { return .success(contentLength == 0 ? .none : .length(contentLength)) }
        return .success(.none)
    }

    /// Response framing for a request made with `method`.
    func responseFraming(requestMethodIsHEAD: Bool) -> Result<BodyFraming, FramingError> {
        let status = self.status
        if requestMethodIsHEAD || (100..<200).contains(status) || status == 204 || status == 304 { return .success(.none) }
        var contentLength: Int? = nil
        var chunked = false
        var transferEncodingSeen = false
        for field in self.fields {
            if field.name == .transferEncoding {
                transferEncodingSeen = true
                chunked = self.lastTokenIs(field, "chunked")
            } else if field.name == .contentLength {
                guard let value = self.contentLengthValue(field) else { return .failure(.malformed("bad Content-Length")) }
                if let existing = contentLength, existing != value { return .failure(.malformed("conflicting Content-Length")) }
                contentLength = value
            }
        }
        if transferEncodingSeen {
            // RFC 9112 §6.3: Transfer-Encoding wins; without a final chunked
            // the body is delimited by the connection closing.
            return .success(chunked ? .chunked : .untilClose)
        }
        if let contentLength { return .success(contentLength == 0 ? .none : .length(contentLength)) }
        return .success(.untilClose)
    }

    /// Whether the message asks for the connection to stay open (RFC 9112 §9.3).
    var keepAlive: Bool {
        var close = false
        var keepAlive = false
        for field in self.fields where field.name == .connection {
            if self.valueHasToken(field, "close") { close = true }
            if self.valueHasToken(field, "keep-alive") { keepAlive = true }
        }
        if close { return false }
        return self.minorVersion == 1 || keepAlive
    }

    /// `1*DIGIT`, or a list of identical values ("5, 5"), up to 2^53.
    private func contentLengthValue(_ field: HTTPField) -> Int? {
        self.bytes.withUnsafeReadableBytes { raw -> Int? in
            var result: Int? = nil
            var current = 0
            var digits = 0
            var index = Int(field.valueStart)
            let end = Int(field.valueEnd)
            func finishElement() -> Bool {
                guard digits > 0 else { return false }
                if let result, result != current { return false }
                result = current
                current = 0
                digits = 0
                return true
            }
            while index < end {
                let c = raw[index]
                if c >= 0x30 && c <= 0x39 {
                    guard digits < 16 else { return nil }
                    current = current * 10 + Int(c - 0x30)
                    digits += 1
                } else if c == UInt8(ascii: ",") {
                    guard finishElement() else { return nil }
                    index += 1
                    while index < end && (raw[index] == 0x20 || raw[index] == 0x09) { index += 1 }
                    continue
                } else {
                    return nil
                }
                index += 1
            }
            guard finishElement() else { return nil }
            return result
        }
    }

    private func valueIsExactly(_ field: HTTPField, _ lower: StaticString) -> Bool {
        let length = Int(field.valueEnd - field.valueStart)
        guard length == lower.utf8CodeUnitCount else { return false }
        return self.bytes.withUnsafeReadableBytes { raw in
            for index in 0..<length where raw[Int(field.valueStart) + index] | 0x20 != lower.utf8Start[index] | 0x20 { return false }
            return true
        }
    }

    private func lastTokenIs(_ field: HTTPField, _ lower: StaticString) -> Bool {
        self.bytes.withUnsafeReadableBytes { raw in
            var end = Int(field.valueEnd)
            let start = Int(field.valueStart)
            while end > start && (raw[end - 1] == 0x20 || raw[end - 1] == 0x09) { end -= 1 }
            var tokenStart = end
            while tokenStart > start && raw[tokenStart - 1] != UInt8(ascii: ",") && raw[tokenStart - 1] != 0x20 { tokenStart -= 1 }
            guard end - tokenStart == lower.utf8CodeUnitCount else { return false }
            for index in 0..<(end - tokenStart) where raw[tokenStart + index] | 0x20 != lower.utf8Start[index] | 0x20 { return false }
            return true
        }
    }
}

/// Reads one body off a byte stream, handing back the bytes that belong to
/// it as zero-copy slices.
struct BodyReader {
    enum Mode: Equatable {
        case none
        case length(remaining: Int)
        case chunked(ChunkedFramer)
        case untilClose
    }

    enum Outcome {
        /// Bytes of the body (raw framing included), possibly empty.
        case bytes(ByteBufferSlice, finished: Bool)
        case invalid(String)
    }

    private(set) var mode: Mode
    /// Body bytes as the application sees them (chunk framing excluded).
    private(set) var bodyBytes = 0

    init(_ framing: BodyFraming) {
        switch framing {
        case .none: self.mode = .none
        case .length(let length): self.mode = .length(remaining: length)
        case .chunked: self.mode = .chunked(ChunkedFramer())
        case .untilClose: self.mode = .untilClose
        }
    }

    var isFinished: Bool {
        switch self.mode {
        case .none: return true
        case .length(let remaining): return remaining == 0
        case .chunked(let framer): return framer.isDone
        case .untilClose: return false
        }
    }

    /// Takes what belongs to this body from the front of `buffer`. With
    /// `dataOnly`, a chunked body is returned as its data, without framing.
    mutating func read(from buffer: inout ByteBuffer, dataOnly: Bool = false) -> Outcome {
        switch self.mode {
        case .none:
            return .bytes(ByteBufferSlice(nil), finished: true)
        case .length(let remaining):
            let take = min(remaining, buffer.readableBytes)
            let slice = buffer.readSlice(length: take)
            self.bodyBytes += take
            self.mode = .length(remaining: remaining - take)
            return .bytes(ByteBufferSlice(slice), finished: remaining == take)
        case .untilClose:
            let take = buffer.readableBytes
            self.bodyBytes += take
            return .bytes(ByteBufferSlice(buffer.readSlice(length: take)), finished: false)
        case .chunked(var framer):
            var ranges: [Range<Int>] = []
            let before = framer.dataBytes
            let outcome = buffer.withUnsafeReadableBytes { raw in
                framer.consume(raw) { range in if dataOnly { ranges.append(range) } }
            }
            self.bodyBytes += framer.dataBytes - before
            self.mode = .chunked(framer)
            let consumed: Int
            let finished: Bool
            switch outcome {
            case .needMore: (consumed, finished) = (buffer.readableBytes, false)
            case .finished(let count): (consumed, finished) = (count, true)
            case .invalid(let reason): return .invalid(reason)
            }
            if dataOnly {
                let base = buffer.readerIndex
                let parts = ranges.compactMap { buffer.getSlice(at: base + $0.lowerBound, length: $0.count) }
                buffer.moveReaderIndex(forwardBy: consumed)
                return .bytes(ByteBufferSlice(parts: parts), finished: finished)
            }
            return .bytes(ByteBufferSlice(buffer.readSlice(length: consumed)), finished: finished)
        }
    }
}

/// Body bytes to forward: usually one slice of the read buffer, held
/// without an array (an array of one was an allocation per read); a
/// dechunked read can give several.
struct ByteBufferSlice {
    private let one: ByteBuffer?
    private let many: [ByteBuffer]

    init(_ one: ByteBuffer?) {
        self.one = one
        self.many = []
    }

    init(parts: [ByteBuffer]) {
        self.one = nil
        self.many = parts
    }

    /// Calls `body` with each non-empty part, in order.
    @inline(__always)
    func forEachPart(_ body: (ByteBuffer) -> Void) {
        if let one = self.one, one.readableBytes > 0 { body(one) }
        for part in self.many where part.readableBytes > 0 { body(part) }
    }

    var isEmpty: Bool { (self.one?.readableBytes ?? 0) == 0 && self.many.allSatisfy { $0.readableBytes == 0 } }
}

import NIOCore
