import Shared

#if canImport(Glibc)
import Glibc
#endif

/// Maps a request path to the collection whose route owns it.
///
/// `path_prefix` matches at a segment boundary (`/orders` matches `/orders`,
/// `/orders/7`, `/orders?x=1`, not `/ordersx`) and the longest prefix wins
/// (SPEC §9). With many routes, lookup walks the path's own segment
/// boundaries from the longest down and probes a dictionary, so its cost
/// depends on the path's depth, not on the number of routes. With a few
/// (the usual case) it compares the path's bytes with each prefix, longest
/// first: no String per level and no hashing.
struct RouteTable {
    struct Match: Equatable {
        let collectionID: String
        /// Bytes of the path covered by the prefix (what strip_prefix removes).
        let prefixBytes: Int
        let stripPrefix: Bool
    }

    private struct Entry {
        let collectionID: String
        let stripPrefix: Bool
    }

    private var entries: [String: Entry] = [:]
    /// The same prefixes as bytes, longest first, when there are at most
    /// `scanLimit` of them.
    private var prefixes: [(bytes: [UInt8], entry: Entry)]? = nil
    static let scanLimit = 16

    init(_ collections: [CollectionRoutes]) {
        for collection in collections {
            for route in collection.routes {
                let prefix = RoutePrefix.normalise(route.pathPrefix)
                if self.entries[prefix] == nil {
                    self.entries[prefix] = Entry(collectionID: collection.id, stripPrefix: route.stripPrefix)
                }
            }
        }
        if self.entries.count <= Self.scanLimit {
            self.prefixes = self.entries.map { (Array($0.key.utf8), $0.value) }.sorted { $0.bytes.count > $1.bytes.count }
        }
    }

    /// `target` is the request target as received (path and query).
    func match(_ target: String) -> Match? {
        guard let prefixes = self.prefixes else { return self.walk(target) }
        var target = target
        return target.withUTF8 { Self.scan(UnsafeRawBufferPointer($0), prefixes) }
    }

    /// A prefix matches a path equal to it, or one that continues with "/"
    /// after it; the root "/" matches every path. Longest first, so the
    /// first match is the longest. Same answers as `walk` (a test holds the
    /// two equal).
    private static func scan(_ target: UnsafeRawBufferPointer, _ prefixes: [(bytes: [UInt8], entry: Entry)]) -> Match? {
        let pathEnd = target.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) ?? target.count
        let path = UnsafeRawBufferPointer(rebasing: target[0..<pathEnd])
        guard path.first == UInt8(ascii: "/") else { return nil }
        for (bytes, entry) in prefixes {
            if bytes.count == 1 {  // "/": the prefixes are normalised, so this is the root
                return Match(collectionID: entry.collectionID, prefixBytes: 0, stripPrefix: entry.stripPrefix)
            }
            guard path.count >= bytes.count, path.count == bytes.count || path[bytes.count] == UInt8(ascii: "/") else { continue }
            let equal = bytes.withUnsafeBytes { memcmp($0.baseAddress!, path.baseAddress!, bytes.count) == 0 }
            if equal { return Match(collectionID: entry.collectionID, prefixBytes: bytes.count, stripPrefix: entry.stripPrefix) }
        }
        return nil
    }

    /// The many-routes lookup. Walks UTF-8 bytes (every delimiter is
    /// ASCII); each level costs one dictionary lookup.
    func walk(_ target: String) -> Match? {
        let utf8 = target.utf8
        let start = utf8.startIndex
        var end = utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) ?? utf8.endIndex
        // A trailing slash is a boundary of its own: "/orders/" is under "/orders".
        while utf8.distance(from: start, to: end) > 1, utf8[utf8.index(before: end)] == UInt8(ascii: "/") {
            end = utf8.index(before: end)
        }
        while true {
            let length = utf8.distance(from: start, to: end)
            if let entry = self.entries[String(target[start..<end])] {
                let isRoot = length == 1 && utf8[start] == UInt8(ascii: "/")
                return Match(collectionID: entry.collectionID, prefixBytes: isRoot ? 0 : length, stripPrefix: entry.stripPrefix)
            }
            guard length > 1, let slash = utf8[start..<end].lastIndex(of: UInt8(ascii: "/")) else { return nil }
            end = slash == start ? utf8.index(after: start) : slash
        }
    }
}
