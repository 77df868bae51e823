import Foundation

/// One worker's part of a change: the clients of this worker that are new
/// or changed, the ones gone, the profile ids of other workers' clients
/// that appeared, moved or disappeared, and the whole policy or route list
/// when one of those changed. At 100,000 clients a whole share is megabytes
/// of JSON and seconds to encode, decode and compile, during which the
/// worker decides nothing; a delta is the change's worth. A policy edit
/// recompiles that policy and re-points its clients; their profiles (and
/// verified tokens) are left alone.
public struct WorkerDelta: Codable, Sendable, Equatable {
    public var upserts: [ClientConfig]
    public var removed: [String]
    public var foreignSet: [String: String]
    public var foreignRemoved: [String]
    /// Every policy, when any changed; nil when none did.
    public var policies: [PolicyConfig]?
    /// Every collection's routes, when any changed; nil when none did.
    public var collections: [CollectionRoutes]?

    enum CodingKeys: String, CodingKey {
        case upserts, removed
        case foreignSet = "foreign_set"
        case foreignRemoved = "foreign_removed"
        case policies, collections
    }

    public init(
        upserts: [ClientConfig] = [], removed: [String] = [], foreignSet: [String: String] = [:], foreignRemoved: [String] = [],
        policies: [PolicyConfig]? = nil, collections: [CollectionRoutes]? = nil
    ) {
        self.upserts = upserts
        self.removed = removed
        self.foreignSet = foreignSet
        self.foreignRemoved = foreignRemoved
        self.policies = policies
        self.collections = collections
    }

    public var isEmpty: Bool {
        self.upserts.isEmpty && self.removed.isEmpty && self.foreignSet.isEmpty && self.foreignRemoved.isEmpty && self.policies == nil
            && self.collections == nil
    }

    /// Per worker, what changed from `old` to `new`. `oldClients` is
    /// `old`'s clients by id (the caller keeps it between changes).
    public static func diff(
        from old: GatewayConfig, oldClients: [String: ClientConfig], to new: GatewayConfig, workerCount: Int, owner: (String) -> Int
    ) -> [WorkerDelta] {
        let routes = new.collections.map { CollectionRoutes(id: $0.id, routes: $0.routes) }
        let routesChanged = old.collections.map { CollectionRoutes(id: $0.id, routes: $0.routes) } != routes
        var deltas = Array(
            repeating: WorkerDelta(policies: old.policies == new.policies ? nil : new.policies, collections: routesChanged ? routes : nil),
            count: workerCount)
        var changed: [(old: ClientConfig?, new: ClientConfig?)] = []
        var kept = 0
        for client in new.clients {
            let before = oldClients[client.id]
            if before != nil { kept += 1 }
            if before != client { changed.append((before, client)) }
        }
        if kept < oldClients.count {
            // Some old clients are gone: find them (only then pay for the set).
            let present = Set(new.clients.map(\.id))
            for (id, client) in oldClients where !present.contains(id) { changed.append((client, nil)) }
        }
        for (before, after) in changed {
            let id = after?.id ?? before?.id ?? ""
            let home = owner(id)
            if let after { deltas[home].upserts.append(after) } else { deltas[home].removed.append(id) }
            // Other workers only learn which profile ids appeared or went:
            // a profile that stays belongs to the same client as before.
            let newProfiles = Set(after?.profiles.map(\.id) ?? [])
            let oldProfiles = Set(before?.profiles.map(\.id) ?? [])
            for worker in 0..<workerCount where worker != home {
                for profile in newProfiles.subtracting(oldProfiles) { deltas[worker].foreignSet[profile] = id }
                for profile in oldProfiles.subtracting(newProfiles) { deltas[worker].foreignRemoved.append(profile) }
            }
        }
        return deltas
    }

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(self))
    }

    public static func decode(_ bytes: [UInt8]) throws -> WorkerDelta {
        try JSONDecoder().decode(WorkerDelta.self, from: Data(bytes))
    }
}
