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
        subcommands: [Serve.self, TokenCommand.self, SecretCommand.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway (router and workers) on a YAML config file.",
        discussion: """
            Client traffic on server.listen, /healthz /readyz /metrics on server.admin_listen.
            SIGHUP or editing the file reloads it; SIGTERM drains and stops.
            Environment: ENCRYPTION_KEY (for enc:v1 secrets), PORTCULLIS_WORKER_BIN, PORTCULLIS_LOG_LEVEL.
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
        let level = ProcessInfo.processInfo.environment["PORTCULLIS_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
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
        subcommands: [Encrypt.self, GenerateKey.self]
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

extension SecretError: LocalizedError {
    public var errorDescription: String? { self.description }
}
