import Shared

/// A request's id, as `X-Request-ID` headers, error bodies and the decision
/// log carry it. Made ids stay two integers until written: rendering them
/// as a `String` cost a heap allocation per request for text that is only
/// ever copied into heads.
enum RequestID: Equatable {
    /// Made here: 16 hex digits of per-loop randomness, then 16 of a counter.
    case generated(prefix: UInt64, counter: UInt64)
    /// The client's own, when acceptable (`RequestIDGenerator.isAcceptable`).
    case given(String)

    static let generatedLength = 32

    /// The id's bytes, valid for the call.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch self {
        case .generated(let prefix, let counter):
            // Written three times per request (frame, upstream, client):
            // eight hex digits per 32 bits at once rather than a loop.
            var digits: (UInt64, UInt64, UInt64, UInt64) = (
                Self.hex(UInt32(truncatingIfNeeded: prefix >> 32)), Self.hex(UInt32(truncatingIfNeeded: prefix)),
                Self.hex(UInt32(truncatingIfNeeded: counter >> 32)), Self.hex(UInt32(truncatingIfNeeded: counter))
            )
            return withUnsafeBytes(of: &digits) { body($0) }
        case .given(var text):
            return text.withUTF8 { body(UnsafeRawBufferPointer($0)) }
        }
    }

    var utf8Count: Int {
        switch self {
        case .generated: return Self.generatedLength
        case .given(let text): return text.utf8.count
        }
    }

    var string: String {
        switch self {
        case .generated: return self.withBytes { String(decoding: $0, as: UTF8.self) }
        case .given(let text): return text
        }
    }

    /// Eight lowercase hex digits of `value`, most significant first, as
    /// the bytes of a UInt64 in memory order: each nibble spread into a
    /// byte, then "0"-"9" or "a"-"f" added to all eight at once.
    static func hex(_ value: UInt32) -> UInt64 {
        var nibbles = UInt64(value)
        nibbles = (nibbles | nibbles << 16) & 0x0000_FFFF_0000_FFFF
        nibbles = (nibbles | nibbles << 8) & 0x00FF_00FF_00FF_00FF
        nibbles = (nibbles | nibbles << 4) & 0x0F0F_0F0F_0F0F_0F0F
        // 1 in each byte whose nibble is 10 or more.
        let letters = ((nibbles &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        let ascii = nibbles &+ 0x3030_3030_3030_3030 &+ letters &* 0x27
        // The most significant nibble is in the highest byte: reverse for
        // memory order (little-endian) so it is written first.
        return UInt64(bigEndian: ascii)
    }
}

extension ByteWriter {
    mutating func write(_ id: RequestID) {
        id.withBytes { self.write($0) }
    }
}

/// Request ids: 16 hex digits of per-loop randomness and a 16-digit counter.
/// Unique without a syscall per request (the random part is drawn once per
/// event loop), and sortable per loop when reading logs.
final class RequestIDGenerator {
    private let prefix: UInt64
    private var counter: UInt64 = 0

    init() {
        let random = (try? Crypto.randomBytes(8)) ?? withUnsafeBytes(of: UInt64.random(in: .min ... .max)) { Array($0) }
        self.prefix = random.reduce(0) { $0 << 8 | UInt64($1) }
    }

    func make() -> RequestID {
        self.counter &+= 1
        return .generated(prefix: self.prefix, counter: self.counter)
    }

    func next() -> String { self.make().string }

    /// A client-sent X-Request-ID is kept when it is 1...128 printable ASCII
    /// characters (SPEC §9); anything else is replaced, so log lines and
    /// headers never carry control characters from a client.
    static func isAcceptable(_ id: String) -> Bool {
        var id = id
        return id.withUTF8 { self.isAcceptable(UnsafeRawBufferPointer($0)) }
    }

    /// The same rule on bytes of a head.
    static func isAcceptable(_ id: UnsafeRawBufferPointer) -> Bool {
        guard (1...128).contains(id.count) else { return false }
        return id.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }
}
