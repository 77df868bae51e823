import Foundation
import Yams

/// A config that parsed, validated and had its secrets resolved: safe to
/// put in force. Built only by `ConfigLoader`.
public struct ValidatedConfig: Sendable {
    public let model: GatewayConfig
    public let listen: HostPort
    public let adminListen: HostPort
    public let trustedProxies: IPRangeSet
    /// Backend credentials by id, resolved to their plaintext header values.
    /// Lives only in the router's memory; never logged, never sent to workers.
    public let credentials: [String: ResolvedCredential]
    public let upstreams: [String: UpstreamURL]
}

public struct ResolvedCredential: Sendable, Equatable {
    public let header: String
    public let value: String
    /// Why the value is missing (a `$VARIABLE` not set): requests to its
    /// collections fail with 500 `credential_unavailable`, the rest of the
    /// gateway serves on (issue 5; SPEC §9 would reject the whole config).
    public let unavailable: String?

    public init(header: String, value: String, unavailable: String? = nil) {
        self.header = header
        self.value = value
        self.unavailable = unavailable
    }
}

public enum ConfigLoader {
    /// Parses YAML text into the model, naming the field of any type error.
    public static func parse(yaml text: String) throws(ConfigError) -> GatewayConfig {
        do {
            let node = try Yams.compose(yaml: text)
            guard let node else { return GatewayConfig() }
            return try YAMLDecoder().decode(GatewayConfig.self, from: node)
        } catch let error as DecodingError {
            throw describe(error)
        } catch let error as YamlError {
            throw ConfigError("", "YAML syntax: \(error)")
        } catch {
            throw ConfigError("", "YAML: \(error)")
        }
    }

    /// Reads the model from the file at `path`. Unlike `parse`, a file that
    /// holds no YAML document at all (empty, blank or only comments) is an
    /// error, not the all-defaults model: such a file is nearly always a
    /// mistake or a write caught half-way (`> config.yaml` truncates before
    /// it writes), and taking it at its word would drop every client on a
    /// reload, or every document from MongoDB on `config import`.
    public static func read(path: String) throws(ConfigError) -> GatewayConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("", "cannot read \(path): \(error.localizedDescription)")
        }
        let hasDocument: Bool
        do {
            hasDocument = try Yams.compose(yaml: text) != nil
        } catch {
            hasDocument = true  // a syntax error: parse names it
        }
        guard hasDocument else {
            throw ConfigError("", "the file holds no YAML document (it is empty or only comments)")
        }
        return try parse(yaml: text)
    }

    /// Reads, validates and resolves the file at `path`.
    public static func load(path: String, environment: [String: String]) throws(ConfigError) -> ValidatedConfig {
        try validate(read(path: path), environment: environment)
    }

    public static func validate(_ model: GatewayConfig, environment: [String: String]) throws(ConfigError) -> ValidatedConfig {
        var validator = ConfigValidator()
        validator.validate(model)
        var issues = validator.issues

        let key: EncryptionKey?
        do {
            key = try EncryptionKey.fromEnvironment(environment)
        } catch {
            key = nil
            issues.append(ConfigIssue("ENCRYPTION_KEY", error.description))
        }
        var credentials: [String: ResolvedCredential] = [:]
        for (i, credential) in model.credentials.enumerated() where SecretValue.isReference(credential.value) {
            do {
                let value = try SecretValue.resolve(credential.value, key: key, environment: environment)
                credentials[credential.id] = ResolvedCredential(header: credential.header, value: value)
            } catch .missingVariable(let name) {
                // Not this config's fault but the environment's: only the
                // collections using it are affected, at request time.
                credentials[credential.id] = ResolvedCredential(
                    header: credential.header, value: "", unavailable: "environment variable \(name) is not set")
            } catch {
                issues.append(ConfigIssue("credentials[\(i)].value", error.description))
            }
        }
        // jwt secrets are resolved by the workers that use them; resolving
        // here too makes a missing key or variable a start-up error that
        // names the field instead of a worker that refuses its snapshot.
        for (i, client) in model.clients.enumerated() {
            for (j, profile) in client.profiles.enumerated() where profile.auth.type == .jwt {
                guard let secret = profile.auth.secret, SecretValue.isReference(secret) else { continue }
                do {
                    _ = try SecretValue.resolve(secret, key: key, environment: environment)
                } catch {
                    issues.append(ConfigIssue("clients[\(i)].profiles[\(j)].auth.secret", error.description))
                }
            }
        }
        guard issues.isEmpty else { throw ConfigError(issues) }

        var upstreams: [String: UpstreamURL] = [:]
        for collection in model.collections {
            upstreams[collection.id] = UpstreamURL(collection.upstream.url)
        }
        return ValidatedConfig(
            model: model,
            listen: HostPort(model.server.listen)!,
            adminListen: HostPort(model.server.adminListen)!,
            trustedProxies: IPRangeSet(model.server.trustedProxies.compactMap { CIDRBlock($0) }),
            credentials: credentials,
            upstreams: upstreams
        )
    }

    /// A change that touched only clients, validated at the cost of the
    /// clients it touched: `changed` (new or edited clients) is checked
    /// against `base`'s policies, collections, credentials and server, and
    /// the result is `base` with `clients` as its client list. The caller
    /// vouches that `clients` is `base`'s with exactly those changes and
    /// removals, and that profile ids stay unique across all clients (it
    /// keeps the index that makes that cheap). Issue paths name `changed`
    /// (`clients[0]` is `changed[0]`).
    public static func validate(
        changedClients changed: [ClientConfig], clients: [ClientConfig], base: ValidatedConfig, environment: [String: String]
    ) throws(ConfigError) -> ValidatedConfig {
        var partial = base.model
        partial.clients = changed
        let checked = try self.validate(partial, environment: environment)
        var model = base.model
        model.clients = clients
        return ValidatedConfig(
            model: model, listen: base.listen, adminListen: base.adminListen, trustedProxies: base.trustedProxies,
            credentials: checked.credentials, upstreams: base.upstreams)
    }

    public static func describe(_ error: DecodingError) -> ConfigError {
        switch error {
        case .typeMismatch(let type, let context):
            return ConfigError(configPath(context.codingPath), "expected \(typeName(type))")
        case .valueNotFound(let type, let context):
            return ConfigError(configPath(context.codingPath), "expected \(typeName(type)), found null")
        case .keyNotFound(let key, let context):
            return ConfigError(configPath(context.codingPath + [key]), "required")
        case .dataCorrupted(let context):
            return ConfigError(configPath(context.codingPath), context.debugDescription)
        @unknown default:
            return ConfigError("", "\(error)")
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type: return "an integer"
        case is Bool.Type: return "true or false"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") { return "a mapping" }
            return "a mapping (\(name))"
        }
    }
}
