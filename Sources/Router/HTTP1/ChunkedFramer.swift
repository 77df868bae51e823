/// Walks a chunked body (RFC 9112 §7.1) to find where it ends, validating
/// the framing on the way, without copying it: the proxy forwards the raw
/// bytes (or, for an HTTP/1.0 peer, just the data ranges it reports).
/// Chunk sizes are limited to 15 hex digits so they cannot overflow, and
/// chunk extensions and trailers are bounded.
struct ChunkedFramer: Equatable {
    enum State: Equatable {
        case size(digits: Int)
        case extensionBytes(count: Int)
        case sizeLF
        case data(remaining: Int)
        case dataCR
        case dataLF
        case trailerLineStart
        case trailerLine(count: Int)
        case trailerLF(empty: Bool)
        case done
    }

    enum Outcome: Equatable {
        /// All input consumed; the body continues.
        case needMore
        /// The body ended after `consumed` bytes of the input.
        case finished(consumed: Int)
        case invalid(String)
    }

    static let maxExtensionBytes = 4096
    static let maxTrailerLineBytes = 8192

    private(set) var state = State.size(digits: 0)
    private var size = 0
    private var trailerBytes = 0
    /// Data bytes seen so far (the body size that limits apply to).
    private(set) var dataBytes = 0

    var isDone: Bool { self.state == .done }

    /// Consumes `input`; `data` is called with the ranges of chunk data.
    mutating func consume(_ input: UnsafeRawBufferPointer, data: (Range<Int>) -> Void) -> Outcome {
        var index = 0
        let count = input.count
        while index < count {
            let byte = input[index]
            switch self.state {
            case .size(let digits):
                if let value = Self.hexValue(byte) {
                    guard digits < 15 else { return .invalid("chunk size too long") }
                    self.size = self.size << 4 | value
                    self.state = .size(digits: digits + 1)
                } else if digits == 0 {
                    return .invalid("missing chunk size")
                } else if byte == 13 {
                    self.state = .sizeLF
                } else if byte == UInt8(ascii: ";") || byte == 0x20 || byte == 0x09 {
                    self.state = .extensionBytes(count: 0)
                } else {
                    return .invalid("bad chunk size")
                }
                index += 1
            case .extensionBytes(let seen):
                if byte == 13 {
                    self.state = .sizeLF
                } else if byte == 10 || (byte < 0x20 && byte != 0x09) || byte == 0x7F {
                    return .invalid("bad chunk extension")
                } else {
                    guard seen < Self.maxExtensionBytes else { return .invalid("chunk extension too long") }
                    self.state = .extensionBytes(count: seen + 1)
                }
                index += 1
            case .sizeLF:
                guard byte == 10 else { return .invalid("chunk size line not ended by CRLF") }
                index += 1
                if self.size == 0 {
                    self.state = .trailerLineStart
                } else {
                    self.state = .data(remaining: self.size)
                    self.size = 0
                }
            case .data(let remaining):
                let take = min(remaining, count - index)
                data(index..<(index + take))
                self.dataBytes += take
                index += take
                self.state = remaining == take ? .dataCR : .data(remaining: remaining - take)
            case .dataCR:
                guard byte == 13 else { return .invalid("chunk data not followed by CRLF") }
                self.state = .dataLF
                index += 1
            case .dataLF:
                guard byte == 10 else { return .invalid("chunk data not followed by CRLF") }
                self.state = .size(digits: 0)
                index += 1
            case .trailerLineStart:
                if byte == 13 {
                    self.state = .trailerLF(empty: true)
                } else if CharacterClass.isToken(byte) {
                    self.state = .trailerLine(count: 1)
                } else {
                    return .invalid("bad trailer field")
                }
                index += 1
            case .trailerLine(let seen):
                if byte == 13 {
                    self.state = .trailerLF(empty: false)
                } else if byte == 10 || !CharacterClass.isFieldValue(byte) && byte != UInt8(ascii: ":") {
                    return .invalid("bad trailer field")
                } else {
                    self.trailerBytes += 1
                    guard seen < Self.maxTrailerLineBytes, self.trailerBytes < 64 * 1024 else { return .invalid("trailers too long") }
                    self.state = .trailerLine(count: seen + 1)
                }
                index += 1
            case .trailerLF(let empty):
                guard byte == 10 else { return .invalid("trailer line not ended by CRLF") }
                index += 1
                if empty {
                    self.state = .done
                    return .finished(consumed: index)
                }
                self.state = .trailerLineStart
            case .done:
                return .finished(consumed: index)
            }
        }
        return self.state == .done ? .finished(consumed: index) : .needMore
    }

    @inline(__always)
    private static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case 0x30...0x39: return Int(c - 0x30)
        case 0x41...0x46: return Int(c - 0x41 + 10)
        case 0x61...0x66: return Int(c - 0x61 + 10)
        default: return nil
        }
    }
}
