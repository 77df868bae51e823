import ArgumentParser
import Foundation
import Shared

// `portcullis client|profile|policy ...`: the management API from the shell,
// so an operator never hand-writes YAML or curl. Every command goes through
// /api/v1 (roles, validation and the audit log apply as for any caller).

private let clientColumns: [(String, @Sendable (JSONValue) -> String)] = [
    ("ID", { Printer.text($0["id"]) }),
    ("STATUS", { Printer.text($0["status"]) }),
    ("POLICY", { Printer.text($0["policy"]) }),
    ("COLLECTIONS", { Printer.text($0["collections"]) }),
    ("PROFILES", { ($0["profiles"]?.array ?? []).map { "\($0["id"]?.string ?? "")(\($0["auth"]?["type"]?.string ?? ""))" }.joined(separator: ",") }),
]

private let profileColumns: [(String, @Sendable (JSONValue) -> String)] = [
    ("ID", { Printer.text($0["id"]) }),
    ("STATUS", { Printer.text($0["status"]) }),
    ("AUTH", { Printer.text($0["auth"]?["type"]) }),
    ("METHODS", { Printer.text($0["allowed_methods"]) }),
    ("ALLOWED_IPS", { Printer.text($0["allowed_ips"]) }),
]

private let policyColumns: [(String, @Sendable (JSONValue) -> String)] = [
    ("ID", { Printer.text($0["id"]) }),
    ("RATE_LIMITS", { ($0["rate_limits"]?.array ?? []).map(RateSpec.describe).joined(separator: ",") }),
    ("QUOTAS", { ($0["quotas"]?.array ?? []).map { "\(Printer.text($0["limit"]))/\(Printer.text($0["per"]))" }.joined(separator: ",") }),
    ("ON_REDIS_FAILURE", { Printer.text($0["on_redis_failure"]) }),
]

struct ClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client", abstract: "Manage clients through the management API.",
        subcommands: [Create.self, List.self, Get.self, Activate.self, Deactivate.self, Delete.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a client (add profiles with `portcullis profile create`).")
        @Argument(help: "Client id (what callers send as X-Client-ID).") var id: String
        @Option(help: "Policy id (rate limits and quotas).") var policy: String?
        @Option(name: .customLong("collection"), help: "A collection the client may call; repeatable.") var collections: [String] = []
        @Flag(help: "Create it inactive.") var inactive = false
        @OptionGroup var options: APIOptions

        func run() throws {
            var body: [String: JSONValue] = [
                "id": .string(self.id), "collections": .array(self.collections.map(JSONValue.string)), "profiles": .array([]),
                "status": .string(self.inactive ? "inactive" : "active"),
            ]
            if let policy { body["policy"] = .string(policy) }
            let created = try self.options.client().call("POST", "/clients", body: .object(body))
            Printer.emit(created, self.options.output, columns: clientColumns)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every client.")
        @OptionGroup var options: APIOptions
        func run() throws {
            Printer.emit(.array(try self.options.client().all("/clients")), self.options.output, columns: clientColumns)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one client (secrets are never shown).")
        @Argument var id: String
        @OptionGroup var options: APIOptions
        func run() throws {
            Printer.emit(try self.options.client().call("GET", "/clients/" + APIClient.escape(self.id)), self.options.output, columns: clientColumns)
        }
    }

    struct Activate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a client active.")
        @Argument var id: String
        @OptionGroup var options: APIOptions
        func run() throws {
            let body = JSONValue.object(["status": .string("active")])
            Printer.emit(
                try self.options.client().call("PATCH", "/clients/" + APIClient.escape(self.id), body: body), self.options.output, columns: clientColumns)
        }
    }

    struct Deactivate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a client inactive: every request of it is refused (403) within a second.")
        @Argument var id: String
        @OptionGroup var options: APIOptions
        func run() throws {
            let body = JSONValue.object(["status": .string("inactive")])
            Printer.emit(
                try self.options.client().call("PATCH", "/clients/" + APIClient.escape(self.id), body: body), self.options.output, columns: clientColumns)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a client and its profiles.")
        @Argument var id: String
        @OptionGroup var options: APIOptions
        func run() throws {
            try self.options.client().call("DELETE", "/clients/" + APIClient.escape(self.id))
            print("deleted client \(self.id)")
        }
    }
}

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile", abstract: "Manage a client's auth profiles through the management API.",
        subcommands: [Create.self, List.self, RotateToken.self, Deactivate.self, Delete.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a profile; for --auth token the new token is printed once.",
            discussion: """
                Examples:
                  portcullis profile create acme acme-mobile --auth token --method GET --method POST
                  portcullis profile create acme acme-sso --auth oidc --issuer https://idp.example.com --audience gateway
                  portcullis profile create acme acme-svc --auth mtls --fingerprint <sha256 hex>
                  portcullis secret encrypt <<< "$SECRET" | portcullis profile create acme acme-jwt --auth jwt --secret-stdin
                """)
        @Argument(help: "The client id.") var client: String
        @Argument(help: "The profile id (unique across all clients; callers send it as X-Profile-ID).") var id: String
        @Option(help: "token, jwt, oidc, mtls or none.") var auth: String
        @Option(name: .customLong("method"), help: "An allowed HTTP method; repeatable (default: all).") var methods: [String] = []
        @Option(name: .customLong("allow-ip"), help: "An allowed source address or CIDR; repeatable (default: any).") var allowedIPs: [String] = []
        @Option(help: "oidc: the issuer URL.") var issuer: String?
        @Option(help: "oidc: the expected aud.") var audience: String?
        @Option(name: .customLong("jwks-uri"), help: "oidc: the JWKS URL (default: by discovery).") var jwksURI: String?
        @Option(help: "mtls: SHA-256 fingerprint of the client certificate (hex).") var fingerprint: String?
        @Flag(name: .customLong("secret-stdin"), help: "jwt: read the secret (enc:v1:... or $VARIABLE) from standard input.") var secretStdin = false
        @OptionGroup var options: APIOptions

        func run() throws {
            var auth: [String: JSONValue] = ["type": .string(self.auth)]
            if let issuer { auth["issuer"] = .string(issuer) }
            if let audience { auth["audience"] = .string(audience) }
            if let jwksURI { auth["jwks_uri"] = .string(jwksURI) }
            if let fingerprint { auth["fingerprint_sha256"] = .string(fingerprint) }
            if self.secretStdin {
                guard let secret = readLine(strippingNewline: true), !secret.isEmpty else { throw ValidationError("pipe the secret on standard input") }
                auth["secret"] = .string(secret)
            }
            var body: [String: JSONValue] = ["id": .string(self.id), "auth": .object(auth)]
            if !self.methods.isEmpty { body["allowed_methods"] = .array(self.methods.map { .string($0.uppercased()) }) }
            if !self.allowedIPs.isEmpty { body["allowed_ips"] = .array(self.allowedIPs.map(JSONValue.string)) }
            let created = try self.options.client().call("POST", "/clients/\(APIClient.escape(self.client))/profiles", body: .object(body))
            Printer.emit(created, self.options.output, columns: profileColumns)
            if self.options.output == .table, let token = created["token"]?.string {
                print("token: \(token)")
                FileHandle.standardError.write(Data("The token is shown once and not stored (only its SHA-256 is).\n".utf8))
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a client's profiles.")
        @Argument var client: String
        @OptionGroup var options: APIOptions
        func run() throws {
            let page = try self.options.client().call("GET", "/clients/\(APIClient.escape(self.client))/profiles")
            Printer.emit(page["items"] ?? .array([]), self.options.output, columns: profileColumns)
        }
    }

    struct RotateToken: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-token", abstract: "Issue a new token for a token profile; the old one stops working everywhere within a second.")
        @Argument var client: String
        @Argument var id: String
        @OptionGroup var options: APIOptions
        func run() throws {
            let answer = try self.options.client().call(
                "POST", "/clients/\(APIClient.escape(self.client))/profiles/\(APIClient.escape(self.id))/rotate-token")
            switch self.options.output {
            case .json: print(answer.serialized)
            case .table: print("token: \(answer["token"]?.string ?? "")")
            }
            FileHandle.standardError.write(Data("The token is shown once and not stored (only its SHA-256 is).\n".utf8))
        }
    }

    struct Deactivate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a profile inactive (403 within a second).")
        @Argument var client: String
        @Argument var id: String
        @OptionGroup var options: APIOptions
        func run() throws {
            let body = JSONValue.object(["status": .string("inactive")])
            let answer = try self.options.client().call(
                "PATCH", "/clients/\(APIClient.escape(self.client))/profiles/\(APIClient.escape(self.id))", body: body)
            Printer.emit(answer, self.options.output, columns: profileColumns)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a profile.")
        @Argument var client: String
        @Argument var id: String
        @OptionGroup var options: APIOptions
        func run() throws {
            try self.options.client().call("DELETE", "/clients/\(APIClient.escape(self.client))/profiles/\(APIClient.escape(self.id))")
            print("deleted profile \(self.id) of client \(self.client)")
        }
    }
}

/// `100/second`, `1000/minute:2000` (burst after the colon).
enum RateSpec {
    static func parse(_ text: String) throws -> JSONValue {
        let parts = text.split(separator: ":", maxSplits: 1)
        let main = parts[0].split(separator: "/")
        guard main.count == 2, let limit = Int(main[0]), limit > 0 else { throw ValidationError("--rate takes LIMIT/WINDOW[:BURST], got \(text)") }
        var object: [String: JSONValue] = ["limit": .number(Double(limit)), "per": .string(String(main[1]))]
        if parts.count > 1 {
            guard let burst = Int(parts[1]), burst > 0 else { throw ValidationError("--rate burst must be a positive integer, got \(text)") }
            object["burst"] = .number(Double(burst))
        }
        return .object(object)
    }

    static func describe(_ limit: JSONValue) -> String {
        var text = "\(Printer.text(limit["limit"]))/\(Printer.text(limit["per"]))"
        if let burst = limit["burst"] { text += ":\(Printer.text(burst))" }
        return text
    }
}

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Manage rate-limit and quota policies through the management API.",
        subcommands: [Create.self, Update.self, List.self, Get.self, Delete.self])

    struct Limits: ParsableArguments {
        @Option(name: .customLong("rate"), help: "A rate limit LIMIT/second|minute|hour[:BURST]; repeatable.") var rates: [String] = []
        @Option(name: .customLong("quota"), help: "A quota LIMIT/day|week|month; repeatable.") var quotas: [String] = []
        @Option(name: .customLong("on-redis-failure"), help: "fail_open or fail_closed.") var onRedisFailure: String?

        func members() throws -> [String: JSONValue] {
            var body: [String: JSONValue] = [:]
            if !self.rates.isEmpty { body["rate_limits"] = .array(try self.rates.map(RateSpec.parse)) }
            if !self.quotas.isEmpty {
                body["quotas"] = .array(
                    try self.quotas.map { text in
                        let parts = text.split(separator: "/")
                        guard parts.count == 2, let limit = Int(parts[0]), limit > 0 else { throw ValidationError("--quota takes LIMIT/PERIOD, got \(text)") }
                        return .object(["limit": .number(Double(limit)), "per": .string(String(parts[1]))])
                    })
            }
            if let onRedisFailure { body["on_redis_failure"] = .string(onRedisFailure) }
            return body
        }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a policy: portcullis policy create gold --rate 100/second:200 --quota 1000000/month")
        @Argument var id: String
        @OptionGroup var limits: Limits
        @OptionGroup var options: APIOptions
        func run() throws {
            var body = try self.limits.members()
            body["id"] = .string(self.id)
            Printer.emit(try self.options.client().call("POST", "/policies", body: .object(body)), self.options.output, columns: policyColumns)
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace the limits given (the others are kept).")
        @Argument var id: String
        @OptionGroup var limits: Limits
        @OptionGroup var options: APIOptions
        func run() throws {
            let body = try self.limits.members()
            guard !body.isEmpty else { throw ValidationError("give --rate, --quota or --on-redis-failure") }
            Printer.emit(
                try self.options.client().call("PATCH", "/policies/" + APIClient.escape(self.id), body: .object(body)), self.options.output,
                columns: policyColumns)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every policy.")
        @OptionGroup var options: APIOptions
        func run() throws {
            Printer.emit(.array(try self.options.client().all("/policies")), self.options.output, columns: policyColumns)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one policy.")
        @Argument var id: String
        @OptionGroup var options: APIOptions
        func run() throws {
            Printer.emit(try self.options.client().call("GET", "/policies/" + APIClient.escape(self.id)), self.options.output, columns: policyColumns)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a policy no client uses (409 otherwise).")
        @Argument var id: String
        @OptionGroup var options: APIOptions
        func run() throws {
            try self.options.client().call("DELETE", "/policies/" + APIClient.escape(self.id))
            print("deleted policy \(self.id)")
        }
    }
}
