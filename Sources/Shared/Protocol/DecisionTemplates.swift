/// Decision templates (see `portcullis.proto`): most of a worker's answers
/// repeat every field but the three that change per request, so after the
/// first one a connection carries only those three and a template number.
/// That spares the worker packing nine text fields and the router
/// unpacking them: the two largest costs of a decision frame (callgrind).
///
/// The table is direct-mapped: an answer's fixed fields pick its slot by
/// hash, and an answer that differs from what its slot holds redefines it.
/// Frames on a connection arrive in the order they were written, so the
/// router's copy of the table always matches the worker's.
public enum DecisionTemplates {
    /// Template numbers run from 1 to `count`; 0 on the wire means none.
    public static let count = 64

    /// Whether two answers agree on every field a template holds: all but
    /// `retryAfterSeconds` and the rate-limit header's remaining and reset.
    /// An absent rate-limit header and one with an empty name look the same
    /// on the wire, so they match here too.
    static func sameFixedFields(_ a: DecisionResponse, _ b: DecisionResponse) -> Bool {
        // String == settles equal storage without reading the bytes, and
        // the engine takes these strings from the same compiled model each time.
        a.outcome == b.outcome && a.status == b.status && a.stripPrefixBytes == b.stripPrefixBytes
            && a.collectionID == b.collectionID && a.policyID == b.policyID && a.authType == b.authType
            && a.reason == b.reason && a.errorCode == b.errorCode && a.rateLimitPolicy == b.rateLimitPolicy
            && (a.rateLimit?.name ?? "") == (b.rateLimit?.name ?? "") && a.message == b.message && a.allow == b.allow
    }

    /// The slot (0..<count) for an answer's fixed fields, from the fields
    /// that tell answers apart in practice: each string's length and its
    /// first and last eight bytes (ids that share a prefix differ at the
    /// end). Two answers with the same slot and different fields only cost
    /// each other a redefinition.
    static func slot(_ response: DecisionResponse) -> Int {
        var hash = UInt64(truncatingIfNeeded: response.status) &* Self.multiplier
        hash = Self.mix(hash, response.collectionID)
        hash = Self.mix(hash, response.policyID)
        hash = Self.mix(hash, response.reason)
        hash = Self.mix(hash, response.authType)
        return Int(truncatingIfNeeded: (hash >> 32) % UInt64(Self.count))
    }

    private static let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15

    @inline(__always)
    private static func mix(_ hash: UInt64, _ text: String) -> UInt64 {
        let (first, last) =
            text.utf8.withContiguousStorageIfAvailable { bytes -> (UInt64, UInt64) in
                Self.ends(UnsafeRawBufferPointer(bytes))
            } ?? Self.ends(Array(text.utf8))
        var mixed = (hash ^ UInt64(truncatingIfNeeded: text.utf8.count)) &* Self.multiplier
        mixed = (mixed ^ first) &* Self.multiplier
        mixed = (mixed ^ last) &* Self.multiplier
        return mixed ^ (mixed >> 29)
    }

    /// The first and the last eight bytes (overlapping, or zero-padded when shorter).
    @inline(__always)
    private static func ends(_ bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        guard let base = bytes.baseAddress else { return (0, 0) }
        if bytes.count >= 8 {
            return (base.loadUnaligned(as: UInt64.self), base.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self))
        }
        var word: UInt64 = 0
        for index in 0..<bytes.count { word |= UInt64(bytes[index]) << (8 * UInt64(index)) }
        return (word, word)
    }

    private static func ends(_ bytes: [UInt8]) -> (UInt64, UInt64) {
        bytes.withUnsafeBytes { Self.ends($0) }
    }
}

/// The worker's side of one connection's templates.
public struct DecisionTemplateEncoder: Sendable {
    private var slots: [DecisionResponse?] = Array(repeating: nil, count: DecisionTemplates.count)

    public init() {}

    /// The template `response` is sent with: `define` when the slot must be
    /// (re)defined by sending the answer whole, else the answer's fixed
    /// fields are already the receiver's template `id`.
    public mutating func template(for response: DecisionResponse) -> (id: UInt32, define: Bool) {
        let slot = DecisionTemplates.slot(response)
        if let held = self.slots[slot], DecisionTemplates.sameFixedFields(held, response) {
            return (UInt32(slot + 1), false)
        }
        self.slots[slot] = response
        return (UInt32(slot + 1), true)
    }
}

/// The router's side of one connection's templates.
public struct DecisionTemplateTable: Sendable {
    private var slots: [DecisionResponse?] = Array(repeating: nil, count: DecisionTemplates.count)

    public init() {}

    /// Template `id` (1...count), or nil when it is out of range or not yet defined.
    func template(_ id: UInt32) -> DecisionResponse? {
        guard id >= 1, id <= DecisionTemplates.count else { return nil }
        return self.slots[Int(id) - 1]
    }

    /// Keeps `response` as template `id`; false when `id` is out of range.
    mutating func define(_ id: UInt32, _ response: DecisionResponse) -> Bool {
        guard id >= 1, id <= DecisionTemplates.count else { return false }
        self.slots[Int(id) - 1] = response
        return true
    }
}
