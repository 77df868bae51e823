import Foundation
import Logging
import NIOConcurrencyHelpers
import Shared

/// Keeps the model in force in step with MongoDB. A change is seen through
/// a change stream per collection where the server offers them (a replica
/// set); elsewhere (a standalone mongod) by polling the version counter
/// every 250 ms. Either way only the changed documents are read again, and
/// everything is read again every `resyncInterval` and after MongoDB comes
/// back. MongoDB being away never stops serving: the last good model stays
/// in force and is also kept on disk for restarts (SPEC §4).
/// Runs on its own threads: libmongoc blocks.
final class MongoConfigSource: @unchecked Sendable {
    enum Mode: String, Sendable {
        case connecting, changeStreams = "change_streams", polling
    }

    struct Status: Sendable {
        let uri: String
        let connected: Bool
        let mode: Mode
        /// Where the model in force came from: "mongodb" or "snapshot".
        let origin: String
        let lastError: String
        let lastChangeUnixMs: Int64
        let skipped: Int
    }

    static let pollInterval: TimeInterval = 0.25
    static let resyncInterval: TimeInterval = 300
    static let changeStreamAwaitMs = 500

    let store: MongoConfigStore
    private let server: ServerConfig
    private let environment: [String: String]
    private let snapshotPath: String
    private let logger: Logger
    private let publish: @Sendable (ValidatedConfig, _ reason: String) -> Void

    private struct State {
        var connected = false
        var mode: Mode = .connecting
        var origin = "none"
        var lastError = ""
        var lastChangeUnixMs: Int64 = 0
        var pending: [(ConfigKind, String)] = []
        var resyncNeeded = true
        var stopping = false
        var watchersRunning = 0
        /// Streams of the current set of watchers that the server accepted,
        /// and when the last of them did.
        var confirmed = 0
        var allConfirmedAt: Date? = nil
        var skipped = 0
    }

    private let state = NIOLockedValueBox(State())
    private let wake = DispatchSemaphore(value: 0)
    private let snapshotWake = DispatchSemaphore(value: 0)
    private let snapshotPending = NIOLockedValueBox<GatewayConfig?>(nil)
    /// Only the controller thread touches these.
    private var latest = ConfigDocumentSet()
    private var undecodable: [ConfigKind: [String: String]] = [:]
    private var accepted = ConfigDocumentSet()
    private var version: Int64 = -1
    private var published: GatewayConfig? = nil
    private var threads: [Thread] = []
    /// The model last assembled and which client holds each profile id:
    /// what a change to a few clients is checked against, so its cost is
    /// theirs and not the whole model's.
    private var inForce: ValidatedConfig? = nil
    private var profileOwner: [String: String] = [:]
    /// When the last full read began (controller thread, or start-up before it).
    private var lastFullReadStart = Date.distantPast

    init(
        store: MongoConfigStore, server: ServerConfig, environment: [String: String], snapshotPath: String, logger: Logger,
        publish: @escaping @Sendable (ValidatedConfig, String) -> Void
    ) {
        self.store = store
        self.server = server
        self.environment = environment
        self.snapshotPath = snapshotPath
        self.logger = logger
        self.publish = publish
        // For servers that claim change streams but do not deliver them
        // (some MongoDB-compatible services), and to test the fallback.
        if environment["PORTCULLIS_MONGODB_CHANGE_STREAMS"] == "off" {
            self.state.withLockedValue { $0.mode = .polling }
        }
    }

    // MARK: start-up

    /// The model to start with: MongoDB's, else the snapshot on disk, else
    /// nil (the gateway then starts unready and waits for MongoDB).
    func initialConfig() -> ValidatedConfig? {
        // Streams first, then the read: every change after the streams
        // opened is in them, every change before is in the read, so no
        // second full read is needed (it costs seconds at 100k clients).
        if self.state.withLockedValue({ $0.mode }) != .polling { self.startWatchers() }
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline {
            let (mode, confirmed, running) = self.state.withLockedValue { ($0.mode, $0.allConfirmedAt != nil, $0.watchersRunning) }
            if confirmed || mode == .polling || running == 0 { break }
            usleep(10_000)
        }
        do {
            let config = try self.fullRead()
            self.state.withLockedValue {
                $0.connected = true
                $0.origin = "mongodb"
                $0.resyncNeeded = false
                $0.lastChangeUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
            }
            self.published = config.model
            self.writeSnapshot(config.model)
            do {
                try self.store.ensureIndexes()
            } catch {
                self.logger.warning("mongodb: could not create indexes; lookups still work, slower", metadata: ["error": "\(error)"])
            }
            return config
        } catch {
            self.noteFailure(error)
            self.logger.error(
                "mongodb unreachable at start; serving the last good snapshot",
                metadata: ["uri": "\(self.store.displayURI)", "snapshot": "\(self.snapshotPath)", "error": "\(error)"])
        }
        guard let snapshot = Self.readSnapshot(self.snapshotPath, server: self.server, environment: self.environment, logger: self.logger) else {
            self.logger.error("no usable snapshot either; not ready until mongodb answers", metadata: ["snapshot": "\(self.snapshotPath)"])
            return nil
        }
        self.accepted = ConfigDocumentSet(snapshot.model)
        self.published = snapshot.model
        self.state.withLockedValue { $0.origin = "snapshot" }
        return snapshot
    }

    func start() {
        let controller = Thread { [self] in self.controlLoop() }
        controller.name = "portcullis.mongo"
        controller.start()
        let writer = Thread { [self] in self.snapshotLoop() }
        writer.name = "portcullis.snapshot"
        writer.start()
        self.threads.append(controller)
    }

    func stop() {
        self.state.withLockedValue { $0.stopping = true }
        self.wake.signal()
        self.snapshotWake.signal()
    }

    func status() -> Status {
        self.state.withLockedValue {
            Status(
                uri: self.store.displayURI, connected: $0.connected, mode: $0.mode, origin: $0.origin, lastError: $0.lastError,
                lastChangeUnixMs: $0.lastChangeUnixMs, skipped: $0.skipped)
        }
    }

    /// A write through the management API: read it back now rather than
    /// wait for the stream or the poll, so the writer's next read sees it.
    func changed(_ kind: ConfigKind, _ id: String) {
        self.state.withLockedValue { $0.pending.append((kind, id)) }
        self.wake.signal()
    }

    // MARK: the controller

    private func controlLoop() {
        var lastFullRead = Date()
        while !self.state.withLockedValue({ $0.stopping }) {
            _ = self.wake.wait(timeout: .now() + Self.pollInterval)
            let (stopping, resync, pending, mode, watchers) = self.state.withLockedValue { state in
                defer {
                    state.pending.removeAll()
                    state.resyncNeeded = false
                }
                return (state.stopping, state.resyncNeeded, state.pending, state.mode, state.watchersRunning)
            }
            if stopping { break }
            // All streams (re)opened after the last full read began: what
            // changed in between was seen by neither, so read everything.
            let streamsNewer = self.state.withLockedValue { ($0.allConfirmedAt ?? .distantPast) > self.lastFullReadStart }
            do {
                if resync || streamsNewer || Date().timeIntervalSince(lastFullRead) > Self.resyncInterval {
                    let config = try self.fullRead()
                    lastFullRead = Date()
                    self.markConnected()
                    self.offer(config, reason: "full read")
                } else if mode == .polling {
                    let current = try self.store.version()
                    self.markConnected()
                    if current != self.version {
                        self.offer(try self.fullRead(), reason: "version \(current)")
                        lastFullRead = Date()
                    }
                } else if !pending.isEmpty {
                    var seen = Set<String>()
                    for (kind, id) in pending where seen.insert("\(kind.rawValue)/\(id)").inserted {
                        try self.reread(kind, id)
                    }
                    let clientIDs = Set(pending.filter { $0.0 == .clients }.map(\.1))
                    let onlyClients = clientIDs.count == seen.count
                    if let config = onlyClients ? self.assembleClients(clientIDs) : self.assemble() {
                        self.offer(config, reason: "change")
                    }
                }
                if mode != .polling && watchers == 0 { self.startWatchers() }
            } catch {
                self.noteFailure(error)
                self.state.withLockedValue { $0.resyncNeeded = true }
                // Back off a little so a MongoDB that is away costs a
                // connection attempt per second, not per poll.
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }

    private func markConnected() {
        let wasDown = self.state.withLockedValue { state -> Bool in
            defer {
                state.connected = true
                state.lastError = ""
            }
            return !state.connected && state.origin != "none"
        }
        if wasDown { self.logger.info("mongodb is back; config changes resume", metadata: ["uri": "\(self.store.displayURI)"]) }
    }

    private func noteFailure(_ error: any Error) {
        let wasUp = self.state.withLockedValue { state -> Bool in
            defer {
                state.connected = false
                state.lastError = "\(error)"
            }
            return state.connected
        }
        if wasUp { self.logger.error("mongodb unreachable; serving the model in force", metadata: ["error": "\(error)"]) }
    }

    /// Reads every document and the version counter; returns the model.
    private func fullRead() throws -> ValidatedConfig {
        self.lastFullReadStart = Date()
        let started = Date()
        let version = try self.store.version()
        let documents = try self.store.loadAll()
        let read = Date()
        self.latest = ConfigDocumentSet()
        self.undecodable = [:]
        for kind in ConfigKind.allCases { self.takeAll(documents.filter { $0.kind == kind }, kind) }
        self.version = version
        let decoded = Date()
        guard let config = self.assemble() else { throw ConfigError("", "no valid model in MongoDB (see the log)") }
        self.logger.info(
            "mongodb: model read",
            metadata: [
                "documents": "\(documents.count)", "read_ms": "\(Int(read.timeIntervalSince(started) * 1000))",
                "decode_ms": "\(Int(decoded.timeIntervalSince(read) * 1000))", "validate_ms": "\(Int(Date().timeIntervalSince(decoded) * 1000))",
            ])
        return config
    }

    /// One decoder pass over a whole collection (JSONDecoder's per-call
    /// cost dominates for 100,000 small documents); if any document is
    /// bad, each is decoded alone so only that one is set aside.
    private func takeAll(_ documents: [MongoConfigStore.RawDocument], _ kind: ConfigKind) {
        guard !documents.isEmpty else { return }
        let array = Data(("[" + documents.map(\.json).joined(separator: ",") + "]").utf8)
        let decoder = JSONDecoder()
        let decoded: [ConfigDocument]?
        switch kind {
        case .policies: decoded = (try? decoder.decode([PolicyConfig].self, from: array))?.map(ConfigDocument.policy)
        case .collections: decoded = (try? decoder.decode([CollectionConfig].self, from: array))?.map(ConfigDocument.collection)
        case .credentials: decoded = (try? decoder.decode([CredentialConfig].self, from: array))?.map(ConfigDocument.credential)
        case .clients: decoded = (try? decoder.decode([ClientConfig].self, from: array))?.map(ConfigDocument.client)
        }
        guard let decoded, decoded.count == documents.count else {
            for raw in documents { self.take(raw) }
            return
        }
        for document in decoded { self.latest.put(document) }
    }

    private func reread(_ kind: ConfigKind, _ id: String) throws {
        if let raw = try self.store.load(kind, id: id) {
            self.take(raw)
        } else {
            self.latest.remove(kind, id)
            self.undecodable[kind]?.removeValue(forKey: id)
        }
    }

    private func take(_ raw: MongoConfigStore.RawDocument) {
        do {
            let document = try ConfigDocument.decode(raw.kind, json: Data(raw.json.utf8))
            self.latest.put(document)
            self.undecodable[raw.kind]?.removeValue(forKey: raw.id)
        } catch {
            self.latest.remove(raw.kind, raw.id)
            self.undecodable[raw.kind, default: [:]][raw.id] = error.description
        }
    }

    private func assemble() -> ValidatedConfig? {
        let undecodable = self.undecodable.flatMap { kind, entries in entries.map { (kind, $0.key, $0.value) } }
        switch ConfigAssembler.assemble(
            latest: self.latest, undecodable: undecodable, accepted: self.accepted, server: self.server, environment: self.environment)
        {
        case .success(let outcome):
            for skipped in outcome.skipped {
                self.logger.error(
                    "mongodb document skipped; its previous version (if any) stays",
                    metadata: ["collection": "\(skipped.kind.rawValue)", "id": "\(skipped.id)", "reason": "\(skipped.reason)"])
            }
            self.accepted = outcome.accepted
            self.state.withLockedValue { $0.skipped = outcome.skipped.count }
            self.inForce = outcome.config
            self.profileOwner = [:]
            for client in outcome.config.model.clients {
                for profile in client.profiles { self.profileOwner[profile.id] = client.id }
            }
            return outcome.config
        case .failure(let error):
            self.logger.error("mongodb model rejected; the model in force stays", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Puts the latest stored versions of `ids` (clients) into the model
    /// in force, validating only them. A client that fails keeps its
    /// previous version (or stays out), as in a full assembly; anything
    /// this path cannot decide alone goes to the full assembly.
    private func assembleClients(_ ids: Set<String>) -> ValidatedConfig? {
        guard let base = self.inForce else { return self.assemble() }
        var candidates: [String: ClientConfig?] = [:]
        var skipped: [(String, String)] = []
        for id in ids {
            if let reason = self.undecodable[.clients]?[id] {
                skipped.append((id, reason))
            } else if case .client(let client)? = self.latest[.clients, id] {
                candidates[id] = .some(client)
            } else {
                candidates[id] = .some(nil)
            }
        }
        // Profile ids stay unique across clients.
        var claimed: [String: String] = [:]
        for (id, client) in candidates {
            for profile in client?.profiles ?? [] {
                let owner = claimed[profile.id] ?? self.profileOwner[profile.id]
                let ownerLetsGo = owner.map { owner in
                    owner == id || (candidates[owner].map { replacement in !(replacement?.profiles.contains { $0.id == profile.id } ?? false) } ?? false)
                } ?? true
                if !ownerLetsGo || claimed[profile.id] != nil {
                    skipped.append((id, "profiles: id \(profile.id) belongs to client \(owner ?? "?")"))
                    candidates.removeValue(forKey: id)
                    break
                }
                claimed[profile.id] = id
            }
        }
        // Validate what is left; a client with issues keeps its old version.
        var changed = candidates.compactMap { $0.value }.sorted { $0.id < $1.id }
        var result: ValidatedConfig? = nil
        for _ in 0..<3 {
            do {
                result = try ConfigLoader.validate(
                    changedClients: changed, clients: Self.patch(base.model.clients, with: candidates), base: base, environment: self.environment)
                break
            } catch {
                var partial = base.model
                partial.clients = changed
                var culprits = Set<String>()
                for issue in error.issues {
                    guard let (kind, id) = ConfigAssembler.document(named: issue.path, in: partial), kind == .clients else {
                        // Not about one of these clients: let the full assembly decide.
                        return self.assemble()
                    }
                    culprits.insert(id)
                    skipped.append((id, issue.description))
                }
                for id in culprits { candidates.removeValue(forKey: id) }
                changed = changed.filter { !culprits.contains($0.id) }
            }
        }
        guard let config = result else { return self.assemble() }
        for (id, reason) in skipped {
            self.logger.error(
                "mongodb document skipped; its previous version (if any) stays",
                metadata: ["collection": "clients", "id": "\(id)", "reason": "\(reason)"])
        }
        for (id, client) in candidates {
            if case .client(let old)? = self.accepted[.clients, id] {
                for profile in old.profiles where self.profileOwner[profile.id] == id { self.profileOwner.removeValue(forKey: profile.id) }
            }
            if let client {
                self.accepted.put(.client(client))
                for profile in client.profiles { self.profileOwner[profile.id] = id }
            } else {
                self.accepted.remove(.clients, id)
            }
        }
        self.inForce = config
        if !skipped.isEmpty { self.state.withLockedValue { $0.skipped += skipped.count } }
        return config
    }

    /// `clients` (sorted by id) with `changes` put in (nil: removed).
    static func patch(_ clients: [ClientConfig], with changes: [String: ClientConfig?]) -> [ClientConfig] {
        var out = clients
        for (id, client) in changes.sorted(by: { $0.key < $1.key }) {
            var low = 0, high = out.count
            while low < high {
                let mid = (low + high) / 2
                if out[mid].id < id { low = mid + 1 } else { high = mid }
            }
            let found = low < out.count && out[low].id == id
            switch (found, client) {
            case (true, let client?): out[low] = client
            case (true, nil): out.remove(at: low)
            case (false, let client?): out.insert(client, at: low)
            case (false, nil): break
            }
        }
        return out
    }

    private func offer(_ config: ValidatedConfig, reason: String) {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let first = self.state.withLockedValue { state -> Bool in
            defer { state.origin = "mongodb" }
            return state.origin != "mongodb"
        }
        guard first || config.model != self.published else { return }
        self.published = config.model
        self.state.withLockedValue { $0.lastChangeUnixMs = now }
        self.writeSnapshot(config.model)
        self.publish(config, "mongodb: \(reason)")
    }

    // MARK: change streams

    private func startWatchers() {
        self.state.withLockedValue {
            $0.watchersRunning = ConfigKind.allCases.count
            $0.confirmed = 0
            $0.allConfirmedAt = nil
        }
        for kind in ConfigKind.allCases {
            let thread = Thread { [self] in
                self.watch(kind)
                self.state.withLockedValue { $0.watchersRunning -= 1 }
            }
            thread.name = "portcullis.mongo.\(kind.rawValue)"
            thread.start()
        }
    }

    /// Follows one collection's change stream until told to stop, the
    /// server says it has none (then polling takes over), or an error
    /// (then the controller reads everything again and restarts it).
    private func watch(_ kind: ConfigKind) {
        do {
            try self.store.pool.withClient { client throws(MongoError) in
                let stream = try client.collection(MongoConfigStore.database, kind.rawValue).watch(maxAwaitMs: Self.changeStreamAwaitMs)
                var confirmed = false
                while !self.state.withLockedValue({ $0.stopping || $0.mode == .polling }) {
                    let event = try stream.next()
                    if !confirmed {
                        // The server accepted the stream. Changes made between
                        // the last full read and now were not seen (a restart
                        // after MongoDB was away is the usual case): read all
                        // again; from here on the stream has every change.
                        confirmed = true
                        self.state.withLockedValue { state in
                            if state.mode == .connecting { state.mode = .changeStreams }
                            state.confirmed += 1
                            if state.confirmed == ConfigKind.allCases.count { state.allConfirmedAt = Date() }
                        }
                        self.wake.signal()
                    }
                    guard let event else { continue }
                    guard let id = event.document("documentKey")?.string("_id") else {
                        // drop, rename, invalidate: read everything again.
                        self.state.withLockedValue { $0.resyncNeeded = true }
                        self.wake.signal()
                        continue
                    }
                    self.changed(kind, id)
                }
            }
        } catch {
            if Self.changeStreamsUnsupported(error) {
                let first = self.state.withLockedValue { state -> Bool in
                    defer { state.mode = .polling }
                    return state.mode != .polling
                }
                if first {
                    self.logger.info(
                        "mongodb offers no change streams (not a replica set); polling the config version every 250 ms",
                        metadata: ["error": "\(error)"])
                }
            } else {
                self.noteFailure(error)
                self.state.withLockedValue { $0.resyncNeeded = true }
                Thread.sleep(forTimeInterval: 1)
            }
            self.wake.signal()
        }
    }

    /// Codes a standalone server answers `$changeStream` with (40573:
    /// "only supported on replica sets", 40324: unknown stage, 20:
    /// IllegalOperation, 115: CommandNotSupported).
    static func changeStreamsUnsupported(_ error: MongoError) -> Bool {
        [40573, 40324, 20, 115].contains(error.code) || error.message.contains("replica set")
    }

    // MARK: snapshot

    /// The snapshot is written by its own thread, at most every 5 s,
    /// always the latest model: at 100,000 clients it is megabytes of JSON
    /// and about a second of CPU, which must not delay the change itself.
    private func writeSnapshot(_ model: GatewayConfig) {
        self.snapshotPending.withLockedValue { $0 = model }
        self.snapshotWake.signal()
    }

    private func snapshotLoop() {
        while true {
            self.snapshotWake.wait()
            let stopping = self.state.withLockedValue { $0.stopping }
            if let model = self.snapshotPending.withLockedValue({ pending -> GatewayConfig? in
                defer { pending = nil }
                return pending
            }) {
                self.storeSnapshot(model)
            }
            if stopping { return }
            Thread.sleep(forTimeInterval: 5)
        }
    }

    private func storeSnapshot(_ model: GatewayConfig) {
        var stored = model
        stored.server = ServerConfig()
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try AtomicFile.write(String(decoding: try encoder.encode(stored), as: UTF8.self), to: self.snapshotPath, mode: 0o600)
        } catch {
            self.logger.warning("cannot write the config snapshot", metadata: ["path": "\(self.snapshotPath)", "error": "\(error)"])
        }
    }

    static func readSnapshot(_ path: String, server: ServerConfig, environment: [String: String], logger: Logger) -> ValidatedConfig? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            var model = try JSONDecoder().decode(GatewayConfig.self, from: data)
            model.server = server
            return try ConfigLoader.validate(model, environment: environment)
        } catch {
            logger.error("config snapshot unusable", metadata: ["path": "\(path)", "error": "\(error)"])
            return nil
        }
    }
}
