import Shared

/// Maps a request path to the collection whose route owns it.
///
/// `path_prefix` matches at a segment boundary (`/orders` matches `/orders`,
/// `/orders/7`, `/orders?x=1`, not `/ordersx`) and the longest prefix wins
/// (SPEC §9). Lookup walks the path's own segment boundaries from the
/// longest down and probes a dictionary, so its cost depends on the path's
/// depth, not on the number of routes.
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

    init(_ collections: [CollectionRoutes]) {
        for collection in collections {
            for route in collection.routes {
                let prefix = RoutePrefix.normalise(route.pathPrefix)
                if self.entries[prefix] == nil {
                    self.entries[prefix] = Entry(collectionID: collection.id, stripPrefix: route.stripPrefix)
                }
            }
        }
    }

    /// `target` is the request target as received (path and query).
    /// Walks UTF-8 bytes (every delimiter is ASCII); each level costs one
    /// dictionary lookup.
    func match(_ target: String) -> Match? {
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
