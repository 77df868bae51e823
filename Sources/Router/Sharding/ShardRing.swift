/// Picks the worker that owns a client id.
///
/// Jump consistent hash (Lamping & Veach, 2014) rather than rendezvous:
/// workers are numbered slots 0..<N that are only ever added or removed at
/// the end (a dead worker is respawned into its own slot), which is exactly
/// jump hash's model. In it a lookup is O(log N) with no table and no
/// allocation, the split is as even as a hash can make it, and going from N
/// to N+1 workers moves only the ~1/(N+1) of clients that the new worker
/// takes. Rendezvous would cost O(N) hashes per request to buy arbitrary
/// removal, which we never need.
///
/// The key hash is FNV-1a 64 with a splitmix64 finaliser: stable across
/// processes and releases (no per-process seed), so a client keeps its
/// worker across router restarts and the mapping can be reproduced in tests.
public struct ShardRing: Sendable {
    public let count: Int

    public init(count: Int) {
        precondition(count > 0, "a shard ring needs at least one worker")
        self.count = count
    }

    public func worker(for clientID: String) -> Int {
        Self.jump(key: Self.hash(clientID), buckets: self.count)
    }

    /// The same for the id's bytes, as the request head holds them.
    public func worker(for clientID: UnsafeRawBufferPointer) -> Int {
        Self.jump(key: Self.hash(clientID), buckets: self.count)
    }

    public static func hash(_ key: String) -> UInt64 {
        var key = key
        return key.withUTF8 { Self.hash(UnsafeRawBufferPointer($0)) }
    }

    public static func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        // FNV's low bits mix poorly for short keys; finalise before jumping.
        hash ^= hash >> 30
        hash &*= 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 27
        hash &*= 0x94d0_49bb_1331_11eb
        hash ^= hash >> 31
        return hash
    }

    static func jump(key: UInt64, buckets: Int) -> Int {
        var key = key
        var b: Int64 = -1
        var j: Int64 = 0
        while j < Int64(buckets) {
            b = j
            key = key &* 2_862_933_555_777_941_757 &+ 1
            j = Int64(Double(b + 1) * (Double(Int64(1) << 31) / Double((key >> 33) + 1)))
        }
        return Int(b)
    }
}
