import NIOCore

/// Appends bytes into memory reserved once, for the heads and frames built
/// on every request. A `ByteBuffer` write costs a uniqueness check, a
/// capacity check and an exclusivity check per call (about 250
/// instructions, measured with callgrind); a proxied request made some 57
/// of them. Here each piece is a bounds check and a `memcpy`.
///
/// Never writes past its room: a piece that does not fit is dropped and
/// `overflowed` set, and `ByteBuffer.writeBytes(reserving:_:)` then runs
/// the builder again with twice the room. Callers pass an upper bound, so
/// that retry is a guard, not a path taken.
public struct ByteWriter {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let capacity: Int
    @usableFromInline var written = 0
    @usableFromInline var didOverflow = false

    /// Bytes written so far.
    @inlinable public var count: Int { self.written }
    /// A piece did not fit and was dropped.
    @inlinable public var overflowed: Bool { self.didOverflow }

    @inlinable
    init(base: UnsafeMutableRawPointer, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    @inlinable
    public mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        guard bytes.count <= self.capacity - self.written else {
            self.didOverflow = true
            return
        }
        (self.base + self.written).copyMemory(from: source, byteCount: bytes.count)
        self.written += bytes.count
    }

    @inlinable
    public mutating func write(_ text: StaticString) {
        self.write(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Disfavoured so that a literal takes the `StaticString` overload: a
    /// short `String` literal is a small (inline) string, and reaching its
    /// bytes cost some 50 instructions per write (callgrind; 25 literal
    /// writes per proxied request) against a bounds check and a `memcpy`.
    @inlinable @_disfavoredOverload
    public mutating func write(_ text: String) {
        // Native strings (all the gateway makes) are contiguous UTF-8: no copy.
        let done: Void? = text.utf8.withContiguousStorageIfAvailable { self.write(UnsafeRawBufferPointer($0)) }
        if done == nil {
            for byte in text.utf8 { self.write(byte: byte) }
        }
    }

    @inlinable
    public mutating func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { self.write($0) }
    }

    @inlinable
    public mutating func write(byte: UInt8) {
        guard self.written < self.capacity else {
            self.didOverflow = true
            return
        }
        self.base.storeBytes(of: byte, toByteOffset: self.written, as: UInt8.self)
        self.written += 1
    }

    /// A non-negative integer in decimal (a negative one writes "0").
    @inlinable
    public mutating func write(decimal value: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for any Int
        var remaining = UInt64(max(0, value))
        let written = withUnsafeMutableBytes(of: &digits) { raw -> Int in
            var index = raw.count
            repeat {
                index -= 1
                raw[index] = UInt8(truncatingIfNeeded: 0x30 &+ remaining % 10)
                remaining /= 10
            } while remaining > 0
            return index
        }
        withUnsafeBytes(of: &digits) { raw in self.write(UnsafeRawBufferPointer(rebasing: raw[written...])) }
    }
}

extension ByteWriter {
    /// One attempt at `build` over `room` bytes at `base`: the count
    /// written, or nil when a piece did not fit.
    @inlinable
    static func fill(_ base: UnsafeMutableRawPointer?, room: Int, _ build: (inout ByteWriter) -> Void) -> Int? {
        guard let base else { return nil }
        var writer = ByteWriter(base: base, capacity: room)
        build(&writer)
        return writer.overflowed ? nil : writer.count
    }

    /// Calls `attempt` with `maxBytes` of room (16 at least), then twice as
    /// much each time it reports that the pieces did not fit.
    @inlinable
    static func retrying(from maxBytes: Int, _ attempt: (_ room: Int) -> Bool) {
        var room = Swift.max(maxBytes, 16)
        while !attempt(room) { room *= 2 }
    }
}

extension ByteBuffer {
    /// Runs `build` over `maxBytes` of reserved room and keeps what it
    /// wrote: one capacity check for a whole head instead of one per piece.
    /// Should `build` need more than `maxBytes` (an upper bound that came
    /// out too low), it runs again with twice the room, so nothing is lost.
    @inlinable
    public mutating func writeBytes(reserving maxBytes: Int, _ build: (inout ByteWriter) -> Void) {
        ByteWriter.retrying(from: maxBytes) { room in
            var fitted = false
            self.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { raw -> Int in
                let written = ByteWriter.fill(raw.baseAddress, room: room, build)
                fitted = written != nil
                return written ?? 0
            }
            return fitted
        }
    }
}

extension String {
    /// A string of what `build` writes: one allocation sized up front, where
    /// interpolation grows a buffer piece by piece and formats integers
    /// through `description`. Pieces must be UTF-8 (they are: ASCII names
    /// and numbers). Should `build` need more than `maxBytes`, it runs again
    /// with twice the room.
    public static func writing(_ maxBytes: Int, _ build: (inout ByteWriter) -> Void) -> String {
        var result = ""
        ByteWriter.retrying(from: maxBytes) { room in
            var fitted = false
            let text = String(unsafeUninitializedCapacity: room) { buffer -> Int in
                let written = ByteWriter.fill(buffer.baseAddress.map { UnsafeMutableRawPointer($0) }, room: room, build)
                fitted = written != nil
                return written ?? 0
            }
            if fitted { result = text }
            return fitted
        }
        return result
    }
}
