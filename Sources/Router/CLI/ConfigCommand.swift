import ArgumentParser
import Foundation
import Shared

/// `portcullis config import|export|validate`: moves the model between a
/// YAML file and MongoDB. Import validates the whole file first (every bad
/// field named with its path) and writes nothing unless it all passes.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Move the config model between YAML and MongoDB, or check a file.",
        subcommands: [Import.self, Export.self, Validate.self]
    )

    struct Store: ParsableArguments {
        @Option(name: .customLong("mongodb-uri"), help: "MongoDB to use (default: $MONGODB_URI).")
        var mongodbURI: String?

        func open() throws -> MongoConfigStore {
            guard let uri = self.mongodbURI ?? ProcessInfo.processInfo.environment["MONGODB_URI"], !uri.isEmpty else {
                throw ValidationError("set MONGODB_URI or pass --mongodb-uri")
            }
            let store = try MongoConfigStore(uri: uri)
            try store.ping()
            return store
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make MongoDB hold exactly the clients, policies, collections and credentials of FILE.",
            discussion: """
                The file is validated as a whole first (references, secrets, CIDRs, ...); if anything is wrong
                every problem is printed with its field path and MongoDB is not touched. Documents are then
                written referenced-first and removed referencing-first, so a running gateway never sees a
                dangling reference. ENCRYPTION_KEY and the $VARIABLES the file names must be set, as for serving.
                The file's server section is ignored (it stays in each instance's own file).
                """)

        @Argument(help: "A YAML config file (the serve format, or the output of config export).")
        var file: String

        @OptionGroup var store: Store

        @Flag(help: "Validate and report what would change, without writing.")
        var dryRun = false

        func run() throws {
            let environment = ProcessInfo.processInfo.environment
            let model: GatewayConfig
            do {
                model = try ConfigLoader.read(path: self.file)
                _ = try ConfigLoader.validate(model, environment: environment)
            } catch {
                // Both calls throw only ConfigError. (`catch let error as
                // ConfigError` here crashed the Swift 6.3 compiler.)
                throw CLIError("\(self.file) is not valid; nothing was imported:\n" + error.issues.map { "  \($0.description)" }.joined(separator: "\n"))
            }
            let store = try self.store.open()
            let existing = ConfigDocumentSet(try ConfigCommand.load(store).model(server: ServerConfig()))
            let wanted = ConfigDocumentSet(model)
            var created = 0, updated = 0, removed = 0, unchanged = 0
            for kind in ConfigKind.allCases {
                for id in wanted.ids(kind) {
                    switch existing[kind, id] {
                    case nil: created += 1
                    case wanted[kind, id]: unchanged += 1
                    default: updated += 1
                    }
                }
                removed += Set(existing.ids(kind)).subtracting(wanted.ids(kind)).count
            }
            let summary = "\(created) created, \(updated) updated, \(unchanged) unchanged, \(removed) removed"
            if self.dryRun {
                print("dry run: would import \(self.file): \(summary)")
                return
            }
            do {
                try store.ensureIndexes()
            } catch {
                FileHandle.standardError.write(Data("portcullis: warning: indexes not created: \(error)\n".utf8))
            }
            try store.replaceAll(with: model)
            print("imported \(self.file) into \(store.displayURI): \(summary)")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print MongoDB's model as YAML (secrets stay as stored: enc:v1 values and $VARIABLE references).")

        @OptionGroup var store: Store

        @Option(name: .shortAndLong, help: "Write to this file (mode 0600) instead of standard output.")
        var output: String?

        func run() throws {
            let store = try self.store.open()
            let documents = try ConfigCommand.load(store)
            let yaml = try ConfigFileWriter.documentsYAML(documents.model(server: ServerConfig()))
            if let output = self.output {
                try AtomicFile.write(yaml, to: output, mode: 0o600)
            } else {
                print(yaml, terminator: "")
            }
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a YAML config file as serve and import would; print every problem.")

        @Argument var file: String

        func run() throws {
            do {
                let config = try ConfigLoader.load(path: self.file, environment: ProcessInfo.processInfo.environment)
                print(
                    "\(self.file): valid (\(config.model.clients.count) clients, \(config.model.policies.count) policies, "
                        + "\(config.model.collections.count) collections, \(config.model.credentials.count) credentials)")
            } catch {
                throw CLIError("\(self.file) is not valid:\n" + error.issues.map { "  \($0.description)" }.joined(separator: "\n"))
            }
        }
    }

    /// Every stored document; one that does not decode is an error naming
    /// it (export must not silently drop a document).
    static func load(_ store: MongoConfigStore) throws -> ConfigDocumentSet {
        var set = ConfigDocumentSet()
        var problems: [String] = []
        for raw in try store.loadAll() {
            do {
                set.put(try ConfigDocument.decode(raw.kind, json: Data(raw.json.utf8)))
            } catch {
                problems.append("  \(raw.kind.rawValue)/\(raw.id): \(error)")
            }
        }
        guard problems.isEmpty else { throw CLIError("stored documents that do not decode:\n" + problems.joined(separator: "\n")) }
        return set
    }
}

/// A failure the CLI reports as one message and exit status 1.
struct CLIError: Error, CustomStringConvertible, LocalizedError {
    let description: String
    init(_ description: String) { self.description = description }
    var errorDescription: String? { self.description }
}
