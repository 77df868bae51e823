import Foundation
import Logging
import NIOConcurrencyHelpers
import Shared

/// The management API (SPEC §6, §9): REST under `/api/v1` on the admin
/// port. Every call runs on a thread pool (MongoDB calls block). Writes
/// are serialised within the instance, validated against the whole model,
/// persisted (MongoDB, or the YAML file written atomically), audited, and
/// in force on this instance's workers before the answer goes out.
final class ManagementAPI: @unchecked Sendable {
    struct Request: Sendable {
        var method: String
        /// Path without the query.
        var path: String
        var query: [String: String]
        var authorization: String?
        var userAgent: String
        var requestID: String
        var sourceIP: String
        var body: [UInt8]
    }

    struct Response: Sendable {
        var status: Int
        var body: String?
    }

    /// Where the model and the audit log are kept.
    enum Backend: Sendable {
        case mongo(MongoConfigStore, MongoConfigSource)
        /// The YAML file; the audit log in a JSON-lines file beside it.
        case file(path: String, audit: FileAuditLog, reload: @Sendable () -> Void)
    }

    private let backend: Backend
    private let authenticator: AdminAuthenticator?
    private let current: @Sendable () -> GatewayConfig
    private let environment: [String: String]
    private let logger: Logger
    private let writeLock = NIOLock()

    init(
        backend: Backend, authenticator: AdminAuthenticator?, environment: [String: String], logger: Logger,
        current: @escaping @Sendable () -> GatewayConfig
    ) {
        self.backend = backend
        self.authenticator = authenticator
        self.environment = environment
        self.logger = logger
        self.current = current
    }

    // MARK: routing

    private enum Route {
        case collection(ConfigKind)
        case document(ConfigKind, String)
        case profiles(client: String)
        case profile(client: String, id: String)
        case rotate(client: String, id: String)
        case audit
        case auditEntry(String)
    }

    private static func route(_ path: String) -> Route? {
        guard path.hasPrefix("/api/v1/") else { return nil }
        let parts = path.dropFirst("/api/v1/".count).split(separator: "/", omittingEmptySubsequences: false).map {
            String($0).removingPercentEncoding ?? String($0)
        }
        guard !parts.contains(where: \.isEmpty) else { return nil }
        if parts[0] == "audit" {
            switch parts.count {
            case 1: return .audit
            case 2: return .auditEntry(parts[1])
            default: return nil
            }
        }
        guard let kind = ConfigKind(rawValue: parts[0]) else { return nil }
        switch (kind, parts.count) {
        case (_, 1): return .collection(kind)
        case (_, 2): return .document(kind, parts[1])
        case (.clients, 3) where parts[2] == "profiles": return .profiles(client: parts[1])
        case (.clients, 4) where parts[2] == "profiles": return .profile(client: parts[1], id: parts[3])
        case (.clients, 5) where parts[2] == "profiles" && parts[4] == "rotate-token": return .rotate(client: parts[1], id: parts[3])
        default: return nil
        }
    }

    /// Which roles may do what (SPEC §6): `viewer` reads all but the audit
    /// log; `modifier` reads that too and creates, updates, deletes and
    /// rotates; `auditor` reads the audit log only; `admin` does everything,
    /// including deleting audit entries.
    static func allowedRoles(method: String, auditPath: Bool) -> Set<AdminAuthenticator.Role> {
        switch (auditPath, method) {
        case (true, "GET"): return [.auditor, .admin]
        case (true, _): return [.admin]
        case (false, "GET"): return [.viewer, .modifier, .admin]
        default: return [.modifier, .admin]
        }
    }

    func handle(_ request: Request) -> Response {
        guard let route = Self.route(request.path) else { return self.error(404, "not_found", "no such API path", request) }
        let isAudit: Bool
        if case .audit = route { isAudit = true } else if case .auditEntry = route { isAudit = true } else { isAudit = false }
        let allowedMethods: [String]
        switch route {
        case .collection, .profiles: allowedMethods = ["GET", "POST"]
        case .document, .profile: allowedMethods = ["GET", "PUT", "PATCH", "DELETE"]
        case .rotate: allowedMethods = ["POST"]
        case .audit: allowedMethods = ["GET"]
        case .auditEntry: allowedMethods = ["DELETE"]
        }
        guard allowedMethods.contains(request.method) else {
            return self.error(405, "method_not_allowed", "allowed: \(allowedMethods.joined(separator: ", "))", request)
        }
        guard let authenticator = self.authenticator else {
            return self.error(503, "admin_auth_unconfigured", "the management API needs server.admin (issuer, audience) in the config", request)
        }
        let principal: AdminAuthenticator.Principal
        switch authenticator.authenticate(authorization: request.authorization) {
        case .success(let who): principal = who
        case .failure(let refusal): return self.error(refusal.status, refusal.error, refusal.message, request, reason: refusal.reason)
        }
        let needed = Self.allowedRoles(method: request.method, auditPath: isAudit)
        guard !principal.roles.isDisjoint(with: needed) else {
            return self.error(
                403, "forbidden", "needs one of the roles: \(needed.map(\.rawValue).sorted().joined(separator: ", "))", request,
                reason: "missing_role")
        }
        switch route {
        case .audit: return self.listAudit(request)
        case .auditEntry(let id): return self.deleteAudit(id, request, principal)
        default: break
        }
        if request.method == "GET" {
            let model = self.current()
            do {
                switch route {
                case .collection(let kind):
                    var limit = ConfigEditor.defaultPageSize
                    if let text = request.query["limit"] {
                        guard let value = Int(text), (1...ConfigEditor.maxPageSize).contains(value) else {
                            return self.error(400, "bad_request", "limit must be 1...\(ConfigEditor.maxPageSize)", request)
                        }
                        limit = value
                    }
                    return Response(status: 200, body: ConfigEditor.list(kind, in: model, limit: limit, after: request.query["after"]))
                case .document(let kind, let id): return Response(status: 200, body: try ConfigEditor.get(kind, id, in: model))
                case .profiles(let client): return Response(status: 200, body: try ConfigEditor.listProfiles(client: client, in: model))
                case .profile(let client, let id): return Response(status: 200, body: try ConfigEditor.getProfile(client: client, id, in: model))
                default: return self.error(404, "not_found", "no such API path", request)
                }
            } catch {
                return self.failure(error, request)
            }
        }
        return self.write(route, request, principal)
    }

    // MARK: writes

    private func write(_ route: Route, _ request: Request, _ principal: AdminAuthenticator.Principal) -> Response {
        var body: JSONValue? = nil
        if !request.body.isEmpty {
            do {
                body = try JSONValue.parse(request.body)
            } catch {
                return self.audited(
                    self.error(400, "bad_request", "the body is not valid JSON: \(error)", request), route: route, request, principal, body: nil)
            }
        }
        let action: String
        switch request.method {
        case "POST": if case .rotate = route { action = "rotate" } else { action = "create" }
        case "DELETE": action = "delete"
        default: action = "update"
        }
        let response: Response = self.writeLock.withLock {
            let model = self.current()
            let outcome: ConfigEditor.Outcome
            do {
                let mode: ConfigEditor.Write = request.method == "POST" ? .create : request.method == "PUT" ? .replace : .patch
                let needsBody = request.method != "DELETE" && action != "rotate"
                if needsBody && body == nil { throw ConfigEditor.Failure.badRequest("a JSON body is required", []) }
                switch route {
                case .collection(let kind):
                    outcome = try ConfigEditor.write(kind, id: nil, body: body ?? .null, mode: .create, model: model, environment: self.environment)
                case .document(let kind, let id):
                    outcome =
                        request.method == "DELETE"
                        ? try ConfigEditor.delete(kind, id, model: model, environment: self.environment)
                        : try ConfigEditor.write(kind, id: id, body: body ?? .null, mode: mode, model: model, environment: self.environment)
                case .profiles(let client):
                    outcome = try ConfigEditor.writeProfile(
                        client: client, id: nil, body: body ?? .null, mode: .create, model: model, environment: self.environment)
                case .profile(let client, let id):
                    outcome =
                        request.method == "DELETE"
                        ? try ConfigEditor.deleteProfile(client: client, id, model: model, environment: self.environment)
                        : try ConfigEditor.writeProfile(
                            client: client, id: id, body: body ?? .null, mode: mode, model: model, environment: self.environment)
                case .rotate(let client, let id):
                    outcome = try ConfigEditor.rotateToken(client: client, id, model: model, environment: self.environment)
                default:
                    return self.error(404, "not_found", "no such API path", request)
                }
            } catch {
                return self.failure(error, request)
            }
            do {
                try self.persist(outcome)
            } catch ConfigEditor.Failure.conflict(let message, let issues) {
                return self.failure(ConfigEditor.Failure.conflict(message, issues), request)
            } catch {
                self.logger.error("management API: could not store a change", metadata: ["request_id": "\(request.requestID)", "error": "\(error)"])
                return self.error(503, "store_unavailable", "the config store did not take the change: \(error)", request)
            }
            return Response(status: outcome.status, body: outcome.body)
        }
        return self.audited(response, route: route, request, principal, body: body, action: action)
    }

    /// Stores the change, then waits (up to 3 s) until it is the model in
    /// force here, so the caller's next read or request sees it.
    private func persist(_ outcome: ConfigEditor.Outcome) throws {
        let change = outcome.change
        switch self.backend {
        case .mongo(let store, let source):
            if let document = change.document {
                do {
                    try store.write(document, mode: change.created ? .create : .upsert)
                } catch .exists {
                    throw ConfigEditor.Failure.conflict("\(change.kind.resourceType) \(change.id) exists", [])
                } catch .notFound {
                    throw ConfigEditor.Failure.conflict("\(change.kind.resourceType) \(change.id) was deleted meanwhile", [])
                } catch .store(let error) {
                    throw error
                }
            } else {
                _ = try store.delete(change.kind, id: change.id)
            }
            source.changed(change.kind, change.id)
        case .file(let path, _, let reload):
            // The file's own `server` section is kept; a file caught empty
            // (mid-write by someone else) refuses the change rather than
            // writing the defaults over it.
            var fileModel = try ConfigLoader.read(path: path)
            let server = fileModel.server
            fileModel = outcome.model
            fileModel.server = server
            try AtomicFile.write(try ConfigFileWriter.yaml(fileModel), to: path, mode: 0o600)
            reload()
        }
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline {
            let inForce = ConfigDocument.find(change.kind, change.id, in: self.current())
            if inForce == change.document { return }
            usleep(10_000)
        }
        self.logger.warning(
            "management API: change stored but not yet in force here", metadata: ["kind": "\(change.kind.rawValue)", "id": "\(change.id)"])
    }

    // MARK: audit

    private func audited(
        _ response: Response, route: Route, _ request: Request, _ principal: AdminAuthenticator.Principal, body: JSONValue?,
        action: String = "update"
    ) -> Response {
        let (type, id): (String, String)
        switch route {
        case .collection(let kind): type = kind.resourceType; id = self.createdID(response) ?? body?["id"]?.string ?? ""
        case .document(let kind, let docID): (type, id) = (kind.resourceType, docID)
        case .profiles: type = "profile"; id = self.createdID(response) ?? body?["id"]?.string ?? ""
        case .profile(_, let profileID), .rotate(_, let profileID): (type, id) = ("profile", profileID)
        case .audit: (type, id) = ("audit", "")
        case .auditEntry(let entryID): (type, id) = ("audit", entryID)
        }
        let now = Date()
        let entry = AuditEntry(
            id: AuditEntry.newID(now), time: AuditEntry.timestamp(now), actorID: principal.id, actorType: principal.type, action: action,
            resourceType: type, resourceID: id, method: request.method, path: request.path, sourceIP: request.sourceIP,
            userAgent: request.userAgent, requestID: request.requestID, body: body, status: response.status)
        do {
            try self.appendAudit(entry)
        } catch {
            // The change is made; losing its record is worth an error line.
            self.logger.error("audit entry not stored", metadata: ["request_id": "\(request.requestID)", "error": "\(error)"])
        }
        return response
    }

    private func createdID(_ response: Response) -> String? {
        guard response.status == 201, let body = response.body else { return nil }
        return (try? JSONValue.parse(Array(body.utf8)))?["id"]?.string
    }

    private func appendAudit(_ entry: AuditEntry) throws {
        switch self.backend {
        case .mongo(let store, _): try store.appendAudit(entry)
        case .file(_, let audit, _): try audit.append(entry)
        }
    }

    private func listAudit(_ request: Request) -> Response {
        var query = AuditQuery()
        query.since = request.query["since"]
        query.until = request.query["until"]
        query.actor = request.query["actor"]
        query.resourceType = request.query["resource_type"]
        query.resourceID = request.query["resource_id"]
        if let text = request.query["limit"] {
            guard let limit = Int(text), (1...1000).contains(limit) else {
                return self.error(400, "bad_request", "limit must be 1...1000", request)
            }
            query.limit = limit
        }
        for (name, value) in [("since", query.since), ("until", query.until)] {
            if let value, !Self.isTimestamp(value) {
                return self.error(400, "bad_request", "\(name) must be an RFC 3339 UTC time such as 2026-01-31T00:00:00Z", request)
            }
        }
        query.since = query.since.map(Self.withMilliseconds)
        query.until = query.until.map(Self.withMilliseconds)
        do {
            let items: [String]
            switch self.backend {
            case .mongo(let store, _): items = try store.listAudit(query)
            case .file(_, let audit, _): items = audit.list(query)
            }
            return Response(status: 200, body: "{\"items\":[" + items.joined(separator: ",") + "]}")
        } catch {
            return self.error(503, "store_unavailable", "the audit log cannot be read: \(error)", request)
        }
    }

    private func deleteAudit(_ id: String, _ request: Request, _ principal: AdminAuthenticator.Principal) -> Response {
        let response: Response
        do {
            let deleted: Bool
            switch self.backend {
            case .mongo(let store, _): deleted = try store.deleteAudit(id: id)
            case .file(_, let audit, _): deleted = try audit.delete(id: id)
            }
            response = deleted ? Response(status: 204, body: nil) : self.error(404, "not_found", "no audit entry \(id)", request)
        } catch {
            response = self.error(503, "store_unavailable", "the audit log cannot be changed: \(error)", request)
        }
        // The deletion is itself audited (SPEC §6).
        return self.audited(response, route: .auditEntry(id), request, principal, body: nil, action: "delete")
    }

    /// Stored times carry exactly three fraction digits, so a bound must
    /// too for the text comparison to order them (`…00Z` sorts after
    /// `…00.500Z`).
    static func withMilliseconds(_ text: String) -> String {
        let seconds = text.prefix(19)
        var fraction = text.dropFirst(19).dropLast().drop { $0 == "." }
        fraction = fraction.prefix(3)
        return seconds + "." + fraction + String(repeating: "0", count: 3 - fraction.count) + "Z"
    }

    /// `2026-01-31T00:00:00Z`, with optional fraction: compares as text
    /// against the stored `2026-01-31T00:00:00.000Z`.
    static func isTimestamp(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes.last == UInt8(ascii: "Z") else { return false }
        let pattern = Array("dddd-dd-ddTdd:dd:dd".utf8)
        for (i, p) in pattern.enumerated() {
            if p == UInt8(ascii: "d") {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) else { return false }
            } else if bytes[i] != p {
                return false
            }
        }
        // Then "Z", or "." and digits and "Z".
        let rest = bytes[19..<(bytes.count - 1)]
        guard let first = rest.first else { return true }
        return first == UInt8(ascii: ".") && rest.count > 1 && rest.dropFirst().allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    // MARK: answers

    private func failure(_ error: any Error, _ request: Request) -> Response {
        switch error {
        case ConfigEditor.Failure.badRequest(let message, let issues):
            return self.error(400, "validation_failed", message, request, issues: issues)
        case ConfigEditor.Failure.notFound(let message):
            return self.error(404, "not_found", message, request)
        case ConfigEditor.Failure.conflict(let message, let issues):
            return self.error(409, "conflict", message, request, issues: issues)
        default:
            return self.error(500, "internal_error", "\(error)", request)
        }
    }

    private func error(_ status: Int, _ code: String, _ message: String, _ request: Request, reason: String? = nil, issues: [ConfigIssue] = []) -> Response {
        var body = "{\"error\":\(JSON.quoted(code)),\"message\":\(JSON.quoted(message))"
        if let reason { body += ",\"reason\":\(JSON.quoted(reason))" }
        if !issues.isEmpty {
            body += ",\"issues\":[" + issues.map { "{\"path\":\(JSON.quoted($0.path)),\"message\":\(JSON.quoted($0.message))}" }.joined(separator: ",") + "]"
        }
        body += ",\"request_id\":\(JSON.quoted(request.requestID))}"
        return Response(status: status, body: body)
    }
}
