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
    func match(_ target: String) -> Match? {
        let utf8 = target.utf8
        let pathEnd = utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) ?? utf8.endIndex
        var path = Substring(target[..<pathEnd])
        // A trailing slash is a boundary of its own: "/orders/" is under "/orders".
        while path.utf8.count > 1 && path.hasSuffix("/") { path = path.dropLast() }
        while true {
            if let entry = self.entries[String(path)] {
                let bytes = path == "/" ? 0 : path.utf8.count
                return Match(collectionID: entry.collectionID, prefixBytes: bytes, stripPrefix: entry.stripPrefix)
            }
            guard path.utf8.count > 1, let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return nil }
            path = slash == path.startIndex ? "/" : path[..<slash]
        }
    }
}
