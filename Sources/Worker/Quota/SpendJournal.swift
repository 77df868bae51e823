#if canImport(Glibc)
import Glibc
#endif

/// A worker slot's quota counts in a memory-mapped file, so a worker that
/// is SIGKILLed loses none of the spends it had not yet synced: every spend
/// is a plain store into the shared mapping (no system call), the kernel
/// keeps the page when the process dies, and the respawned worker of the
/// same slot reads it back. It does not survive a machine crash; Redis
/// has everything up to the last sync.
///
/// Fixed 256-byte records: window end (0 = free), spent, granted (Int64),
/// key length (UInt16), key bytes. The window end is written last, so a
/// record torn by a crash mid-allocation reads as free.
final class SpendJournal {
    static let recordSize = 256
    static let keyOffset = 26
    static let maxKeyBytes = recordSize - keyOffset

    struct Entry: Equatable {
        var spent: Int
        var granted: Int
    }

    let path: String
    private let capacity: Int
    private let base: UnsafeMutableRawPointer
    private var restoredSlots: [String: Int] = [:]
    private var freeSlots: [Int] = []
    private var nextUnused = 0
    private(set) var droppedKeys = 0

    struct OpenError: Error, CustomStringConvertible {
        let message: String
        var description: String { self.message }
    }

    /// Opens (or creates) the file and collects the records of windows that
    /// have not ended; the rest of the file is free space.
    init(path: String, capacity: Int = 65_536, nowUnixSeconds: Int64) throws(OpenError) {
        self.path = path
        self.capacity = capacity
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw OpenError(message: "journal \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let size = capacity * Self.recordSize
        // Sparse: only touched pages take disk or memory.
        guard ftruncate(fd, off_t(size)) == 0 else {
            throw OpenError(message: "journal \(path): \(String(cString: strerror(errno)))")
        }
        guard let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            throw OpenError(message: "journal \(path): mmap: \(String(cString: strerror(errno)))")
        }
        self.base = mapped
        var highest = -1
        for slot in 0..<capacity {
            let record = self.base + slot * Self.recordSize
            let windowEnd = record.loadUnaligned(as: Int64.self)
            if windowEnd == 0 { continue }
            highest = slot
            let length = Int(record.loadUnaligned(fromByteOffset: 24, as: UInt16.self))
            if windowEnd <= nowUnixSeconds || length == 0 || length > Self.maxKeyBytes {
                record.storeBytes(of: Int64(0), as: Int64.self)
                continue
            }
            let key = String(decoding: UnsafeRawBufferPointer(start: record + Self.keyOffset, count: length), as: UTF8.self)
            self.restoredSlots[key] = slot
        }
        self.nextUnused = highest + 1
        for slot in 0..<self.nextUnused where self.base.loadUnaligned(fromByteOffset: slot * Self.recordSize, as: Int64.self) == 0 {
            self.freeSlots.append(slot)
        }
    }

    deinit {
        munmap(self.base, self.capacity * Self.recordSize)
    }

    var restoredCount: Int { self.restoredSlots.count }

    /// What a previous process of this slot recorded for `key`, if anything.
    func restored(_ key: String) -> Entry? {
        guard let slot = self.restoredSlots[key] else { return nil }
        let record = self.base + slot * Self.recordSize
        return Entry(
            spent: Int(record.loadUnaligned(fromByteOffset: 8, as: Int64.self)),
            granted: Int(record.loadUnaligned(fromByteOffset: 16, as: Int64.self)))
    }

    /// A record for `key` (its restored one if there is one); nil when the
    /// key is too long or the journal is full: that account then relies on
    /// Redis alone, and `droppedKeys` says how often that happened.
    func allocate(key: String, windowEnd: Int64) -> Int? {
        if let slot = self.restoredSlots.removeValue(forKey: key) { return slot }
        let bytes = Array(key.utf8)
        guard bytes.count <= Self.maxKeyBytes else {
            self.droppedKeys += 1
            return nil
        }
        let slot: Int
        if let free = self.freeSlots.popLast() {
            slot = free
        } else if self.nextUnused < self.capacity {
            slot = self.nextUnused
            self.nextUnused += 1
        } else {
            self.droppedKeys += 1
            return nil
        }
        let record = self.base + slot * Self.recordSize
        record.storeBytes(of: Int64(0), toByteOffset: 8, as: Int64.self)
        record.storeBytes(of: Int64(0), toByteOffset: 16, as: Int64.self)
        record.storeBytes(of: UInt16(bytes.count), toByteOffset: 24, as: UInt16.self)
        bytes.withUnsafeBytes { (record + Self.keyOffset).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        record.storeBytes(of: windowEnd, as: Int64.self)
        return slot
    }

    func write(_ slot: Int, spent: Int, granted: Int) {
        let record = self.base + slot * Self.recordSize
        record.storeBytes(of: Int64(spent), toByteOffset: 8, as: Int64.self)
        record.storeBytes(of: Int64(granted), toByteOffset: 16, as: Int64.self)
    }

    func free(_ slot: Int) {
        (self.base + slot * Self.recordSize).storeBytes(of: Int64(0), as: Int64.self)
        self.freeSlots.append(slot)
    }
}
