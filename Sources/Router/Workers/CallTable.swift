/// The calls in flight on one worker link, by call id. Ids are handed out in
/// sequence and answers come back in about that order, so the id's low bits
/// index a slot directly: no hashing, no probing. A call whose slot is still
/// held by an older one (which would take more calls in flight than slots)
/// goes to a dictionary beside it; that costs a lookup, never an answer.
struct CallTable<Value> {
    private var slots: [(id: UInt64, value: Value?)]
    private var overflow: [UInt64: Value] = [:]
    private let mask: UInt64
    private(set) var count = 0

    /// `capacity` is rounded up to a power of two.
    init(capacity: Int = 1024) {
        var size = 1
        while size < capacity { size <<= 1 }
        self.slots = Array(repeating: (0, nil), count: size)
        self.mask = UInt64(size - 1)
    }

    var isEmpty: Bool { self.count == 0 }

    /// Adds call `id` (never 0, which marks a free slot; each id once).
    mutating func insert(_ id: UInt64, _ value: Value) {
        precondition(id != 0, "call id 0 is reserved")
        let slot = Int(id & self.mask)
        if self.slots[slot].id == 0 {
            self.slots[slot] = (id, value)
        } else {
            self.overflow[id] = value
        }
        self.count += 1
    }

    /// Takes call `id` out; nil when it is not (or no longer) in flight.
    mutating func remove(_ id: UInt64) -> Value? {
        guard id != 0 else { return nil }
        let slot = Int(id & self.mask)
        if self.slots[slot].id == id {
            let value = self.slots[slot].value
            self.slots[slot] = (0, nil)
            self.count -= 1
            return value
        }
        guard !self.overflow.isEmpty, let value = self.overflow.removeValue(forKey: id) else { return nil }
        self.count -= 1
        return value
    }

    /// Takes every call out, oldest id first.
    mutating func removeAll() -> [(id: UInt64, value: Value)] {
        var all: [(id: UInt64, value: Value)] = []
        all.reserveCapacity(self.count)
        for index in self.slots.indices where self.slots[index].id != 0 {
            if let value = self.slots[index].value { all.append((self.slots[index].id, value)) }
            self.slots[index] = (0, nil)
        }
        for (id, value) in self.overflow { all.append((id, value)) }
        self.overflow.removeAll()
        self.count = 0
        all.sort { $0.id < $1.id }
        return all
    }
}
