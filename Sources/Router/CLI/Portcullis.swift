import ArgumentParser
import Foundation
import Logging
import Shared

@main
struct Portcullis: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portcullis",
        abstract: "An API gateway: authenticates every consumer, enforces limits, proxies the rest.",
        discussion: """
            Run `portcullis --config FILE` to serve (the `serve` subcommand is the default).
            Config format: see README.md and demo/portcullis.yaml.
            """,
        subcommands: [Serve.self, ConfigCommand.self, ClientCommand.self, ProfileCommand.self, PolicyCommand.self, TokenCommand.self, SecretCommand.self, JWTCommand.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway (router and workers) on a YAML config file (or MongoDB with MONGODB_URI).",
        discussion: """
            Client traffic on server.listen (HTTPS on server.tls.listen).
            /healthz, /readyz, /metrics and the management API (/api/v1, with
            server.admin) on server.admin_listen.
            SIGHUP or editing the file reloads it; SIGTERM drains and stops.

            Environment:
              MONGODB_URI              the model lives in MongoDB (the file then
                                       gives only `server`)
              ENCRYPTION_KEY           key of enc:v1 secrets
              ENCRYPTION_KEY_PREVIOUS  still accepted during a key rotation
              REDIS_URL                shared quotas
              CORS_ALLOW_ORIGINS       browser origins allowed on the admin port
              SSL_CERT_FILE            CA bundle for OIDC keys over HTTPS
                                       (default: the system's)
              PORTCULLIS_MONGODB_CHANGE_STREAMS=off  poll meta.version instead
              PORTCULLIS_INSTANCE_ID   this instance's name in quota keys
              PORTCULLIS_WORKER_BIN    the worker binary (default: next to this)
              PORTCULLIS_LOG_LEVEL     trace...critical (default info)
              PORTCULLIS_LOG_FORMAT    json (default, one object per line on
                                       stderr) or text
            """
    )

    @Option(name: .long, help: "Path to the YAML config file.")
    var config: String

    @Option(name: .long, help: "Number of worker processes (default: server.workers, else the CPU count).")
    var workers: Int?

    func validate() throws {
        if let workers, !(1...256).contains(workers) { throw ValidationError("--workers must be 1...256") }
    }

    func run() throws {
        LogSetup.bootstrap(process: "router")
        let status = Gateway.run(Gateway.Options(configPath: self.config, workers: self.workers))
        if status != 0 { throw ExitCode(status) }
    }
}

struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Issue gateway tokens for `auth: { type: token }` profiles.",
        subcommands: [Issue.self, Hash.self]
    )

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a new token (shown once: store it now) and the token_sha256 line for the config.")

        func run() throws {
            let token = try GatewayToken.generate()
            print("token: \(token)")
            print("token_sha256: \"\(Crypto.sha256(token).hex)\"")
            FileHandle.standardError.write(Data("The token is not stored anywhere; only its SHA-256 goes in the config.\n".utf8))
        }
    }

    struct Hash: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the token_sha256 of a token read from standard input.")

        func run() throws {
            guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                throw ValidationError("pipe the token on standard input")
            }
            print(Crypto.sha256(line).hex)
        }
    }
}

struct SecretCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret",
        abstract: "Encrypt secrets for the config under ENCRYPTION_KEY.",
        subcommands: [Encrypt.self, GenerateKey.self, RotateKey.self]
    )

    struct Encrypt: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encrypt a value read from standard input; prints enc:v1:<kid>:<base64>.")

        func run() throws {
            guard let key = try EncryptionKey.fromEnvironment(ProcessInfo.processInfo.environment) else {
                throw ValidationError("set ENCRYPTION_KEY (32 bytes, hex or base64; `portcullis secret generate-key` makes one)")
            }
            guard let value = readLine(strippingNewline: true), !value.isEmpty else {
                throw ValidationError("pipe the secret on standard input")
            }
            print(try SecretValue.encrypt(value, key: key))
        }
    }

    struct GenerateKey: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "generate-key", abstract: "Print a random 32-byte ENCRYPTION_KEY (hex).")

        func run() throws {
            print(Hex.encode(try Crypto.randomBytes(32)))
        }
    }
}

extension SecretCommand {
    struct RotateKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-key",
            abstract: "Re-encrypt every stored enc:v1 secret from one ENCRYPTION_KEY to another.",
            discussion: """
                Works on a YAML file (--config; rewritten atomically, comments kept) or on MongoDB (--mongodb-uri or
                $MONGODB_URI; every credential and client document holding a secret). Pass keys as $VARIABLE names so
                they stay off the process list: --from '$OLD_KEY' --to '$NEW_KEY'.
                Without downtime: run the gateways with ENCRYPTION_KEY=NEW and ENCRYPTION_KEY_PREVIOUS=OLD, rotate,
                then drop ENCRYPTION_KEY_PREVIOUS. Values already under NEW are skipped, so a rerun is safe.
                """)

        @Option(help: "The current key (hex or base64), or $VARIABLE holding it.") var from: String
        @Option(help: "The new key (hex or base64), or $VARIABLE holding it.") var to: String
        @Option(help: "A YAML config file to rewrite.") var config: String?
        @OptionGroup var store: ConfigCommand.Store

        func run() throws {
            let old = try Self.key(self.from, "--from")
            let new = try Self.key(self.to, "--to")
            if let path = self.config {
                let outcome = try SecretRotation.rotate(String(contentsOfFile: path, encoding: .utf8), from: old, to: new)
                if outcome.rotated > 0 { try AtomicFile.write(outcome.text, to: path, mode: 0o600) }
                print("\(path): \(outcome.rotated) secrets re-encrypted under \(new.kid), \(outcome.alreadyRotated) already were")
                return
            }
            let store = try self.store.open()
            var rotated = 0, already = 0, documents = 0
            for raw in try store.loadAll() where raw.json.contains(SecretValue.prefix) {
                let outcome = try SecretRotation.rotate(raw.json, from: old, to: new)
                already += outcome.alreadyRotated
                guard outcome.rotated > 0 else { continue }
                let document: ConfigDocument
                do {
                    document = try ConfigDocument.decode(raw.kind, json: Data(outcome.text.utf8))
                } catch {
                    throw CLIError("\(raw.kind.rawValue)/\(raw.id) does not decode: \(error)")
                }
                do {
                    try store.write(document, mode: .replace)
                } catch {
                    throw CLIError("\(raw.kind.rawValue)/\(raw.id): \(error) (rerun to finish; values already rotated are skipped)")
                }
                rotated += outcome.rotated
                documents += 1
            }
            print("\(store.displayURI): \(rotated) secrets in \(documents) documents re-encrypted under \(new.kid), \(already) already were")
        }

        static func key(_ given: String, _ option: String) throws -> EncryptionKey {
            var text = given
            if given.hasPrefix("$") {
                guard let value = ProcessInfo.processInfo.environment[String(given.dropFirst())], !value.isEmpty else {
                    throw ValidationError("\(option): environment variable \(given.dropFirst()) is not set")
                }
                text = value
            }
            do {
                return try EncryptionKey(parsing: text)
            } catch {
                throw ValidationError("\(option): must be 32 bytes as 64 hex digits or base64")
            }
        }
    }
}

struct JWTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwt",
        abstract: "Mint HS256/384/512 tokens to try a jwt profile.",
        subcommands: [Sign.self]
    )

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign a token with the secret read from standard input (never from argv, which others can see).",
            discussion: "echo -n \"$SECRET\" | portcullis jwt sign --sub acme-mobile --ttl 300 --claim tenant_id=t-42")

        @Option(help: "The sub claim (a jwt profile matches it to X-Client-ID).")
        var sub: String

        @Option(help: "Seconds until exp.")
        var ttl: Int = 300

        @Option(help: "HS256, HS384 or HS512.")
        var alg: String = "HS256"

        @Option(parsing: .singleValue, help: "Extra string claim as name=value; repeatable.")
        var claim: [String] = []

        func validate() throws {
            guard let algorithm = JWSAlgorithm(rawValue: self.alg), algorithm.isHMAC else { throw ValidationError("--alg must be HS256, HS384 or HS512") }
            guard self.ttl > 0 else { throw ValidationError("--ttl must be positive") }
            for entry in self.claim where !entry.contains("=") { throw ValidationError("--claim takes name=value, got \(entry)") }
        }

        func run() throws {
            guard let secret = readLine(strippingNewline: true), !secret.isEmpty else {
                throw ValidationError("pipe the profile's secret on standard input")
            }
            let now = Int(Date().timeIntervalSince1970)
            var members = ["\"sub\":\(JSON.quoted(self.sub))", "\"iat\":\(now)", "\"exp\":\(now + self.ttl)"]
            for entry in self.claim {
                let parts = entry.split(separator: "=", maxSplits: 1)
                members.append("\(JSON.quoted(String(parts[0]))):\(JSON.quoted(parts.count > 1 ? String(parts[1]) : ""))")
            }
            let algorithm = JWSAlgorithm(rawValue: self.alg) ?? .hs256
            print(
                JWSMinter.hmac(
                    algorithm, secret: secret, headerJSON: "{\"alg\":\"\(algorithm.rawValue)\",\"typ\":\"JWT\"}",
                    claimsJSON: "{" + members.joined(separator: ",") + "}"))
        }
    }
}

extension SecretError: LocalizedError {
    public var errorDescription: String? { self.description }
}
