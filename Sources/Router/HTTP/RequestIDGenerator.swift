import Shared

/// Request ids: 16 hex digits of per-loop randomness and a 16-digit counter.
/// Unique without a syscall per request (the random part is drawn once per
/// event loop), and sortable per loop when reading logs.
final class RequestIDGenerator {
    private let prefix: [UInt8]
    private var counter: UInt64 = 0
    private static let digits = Array("0123456789abcdef".utf8)

    init() {
        let random = (try? Crypto.randomBytes(8)) ?? withUnsafeBytes(of: UInt64.random(in: .min ... .max)) { Array($0) }
        self.prefix = Array(Hex.encode(random).utf8)
    }

    func next() -> String {
        self.counter &+= 1
        var value = self.counter
        return String(unsafeUninitializedCapacity: 32) { buffer in
            for (index, byte) in self.prefix.enumerated() { buffer[index] = byte }
            for index in stride(from: 31, through: 16, by: -1) {
                buffer[index] = Self.digits[Int(value & 0xF)]
                value >>= 4
            }
            return 32
        }
    }

    /// A client-sent X-Request-ID is kept when it is 1...128 printable ASCII
    /// characters (SPEC §9); anything else is replaced, so log lines and
    /// headers never carry control characters from a client.
    static func isAcceptable(_ id: String) -> Bool {
        let utf8 = id.utf8
        guard (1...128).contains(utf8.count) else { return false }
        return utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }
}
