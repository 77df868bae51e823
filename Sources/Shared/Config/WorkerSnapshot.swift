import Foundation

/// What one worker needs of the model: its own clients in full, who owns
/// every other profile id (so a profile of another worker's client is a
/// `client_profile_mismatch`, not `unknown_profile`), the policies, and the
/// collections' routes. Upstream URLs and backend credentials stay in the
/// router, which is the only process that uses them.
public struct WorkerSnapshot: Codable, Sendable, Equatable {
    public var version: UInt64
    public var workerIndex: Int
    public var clients: [ClientConfig]
    public var foreignProfiles: [String: String]
    public var policies: [PolicyConfig]
    public var collections: [CollectionRoutes]

    enum CodingKeys: String, CodingKey {
        case version
        case workerIndex = "worker_index"
        case clients
        case foreignProfiles = "foreign_profiles"
        case policies, collections
    }

    public init(version: UInt64, workerIndex: Int, clients: [ClientConfig], foreignProfiles: [String: String], policies: [PolicyConfig], collections: [CollectionRoutes]) {
        self.version = version
        self.workerIndex = workerIndex
        self.clients = clients
        self.foreignProfiles = foreignProfiles
        self.policies = policies
        self.collections = collections
    }

    /// Splits `model` by `owner(clientID)`, one snapshot per worker.
    public static func partition(_ model: GatewayConfig, version: UInt64, workerCount: Int, owner: (String) -> Int) -> [WorkerSnapshot] {
        let collections = model.collections.map { CollectionRoutes(id: $0.id, routes: $0.routes) }
        var clients = Array(repeating: [ClientConfig](), count: workerCount)
        var profileOwner: [String: (client: String, worker: Int)] = [:]
        for client in model.clients {
            let worker = owner(client.id)
            clients[worker].append(client)
            for profile in client.profiles { profileOwner[profile.id] = (client.id, worker) }
        }
        return (0..<workerCount).map { index in
            var foreign: [String: String] = [:]
            for (profile, entry) in profileOwner where entry.worker != index { foreign[profile] = entry.client }
            return WorkerSnapshot(
                version: version, workerIndex: index, clients: clients[index], foreignProfiles: foreign,
                policies: model.policies, collections: collections)
        }
    }

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(self))
    }

    public static func decode(_ bytes: [UInt8]) throws -> WorkerSnapshot {
        try JSONDecoder().decode(WorkerSnapshot.self, from: Data(bytes))
    }
}

public struct CollectionRoutes: Codable, Sendable, Equatable {
    public var id: String
    public var routes: [RouteConfig]

    public init(id: String, routes: [RouteConfig]) {
        self.id = id
        self.routes = routes
    }
}
