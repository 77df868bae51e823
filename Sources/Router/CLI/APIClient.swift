import ArgumentParser
import Foundation
import Shared

/// What every management-API command takes: where the API is, the bearer
/// token (from the environment or a file, never argv, which every user on
/// the host can read), and how to print.
struct APIOptions: ParsableArguments {
    enum Output: String, ExpressibleByArgument, CaseIterable {
        case table, json
    }

    @Option(help: "Management API base URL (default: $PORTCULLIS_API_URL, else http://127.0.0.1:8081).")
    var api: String?

    @Option(name: .customLong("token-file"), help: "File holding the bearer token (default: $PORTCULLIS_API_TOKEN).")
    var tokenFile: String?

    @Option(name: .shortAndLong, help: "table (default) or json.")
    var output: Output = .table

    func client() throws -> APIClient {
        let environment = ProcessInfo.processInfo.environment
        let base = self.api ?? environment["PORTCULLIS_API_URL"] ?? "http://127.0.0.1:8081"
        var token = environment["PORTCULLIS_API_TOKEN"]
        if let tokenFile {
            token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let token, !token.isEmpty else {
            throw ValidationError("set PORTCULLIS_API_TOKEN or pass --token-file (an OIDC access token from server.admin.issuer)")
        }
        return try APIClient(base: base, token: token)
    }
}

/// Blocking calls to `/api/v1` (one connection per call: a CLI makes a
/// handful). Non-2xx answers become `CLIError`s carrying the API's message
/// and field issues.
struct APIClient {
    let base: String
    let token: String
    let fetcher: HTTPFetcher

    init(base: String, token: String) throws {
        var trimmed = base
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard FetchURL(trimmed + "/api/v1") != nil else { throw ValidationError("--api must be an http:// or https:// URL, got \(base)") }
        self.base = trimmed
        self.token = token
        self.fetcher = try HTTPFetcher()
    }

    @discardableResult
    func call(_ method: String, _ path: String, body: JSONValue? = nil) throws -> JSONValue {
        guard let url = FetchURL(self.base + "/api/v1" + path) else { throw CLIError("bad API path \(path)") }
        var headers = [("Authorization", "Bearer \(self.token)")]
        var bytes: [UInt8]? = nil
        if let body {
            headers.append(("Content-Type", "application/json"))
            bytes = Array(body.serialized.utf8)
        }
        let response: FetchedDocument
        do {
            response = try self.fetcher.request(method, url, headers: headers, body: bytes, timeoutMs: 15_000)
        } catch {
            throw CLIError("\(method) \(url): \(error)")
        }
        let parsed = response.body.isEmpty ? JSONValue.null : (try? JSONValue.parse(response.body)) ?? .null
        guard (200..<300).contains(response.status) else {
            var message = "\(method) \(path): \(response.status) \(parsed["error"]?.string ?? "")"
            if let text = parsed["message"]?.string { message += ": \(text)" }
            if case .array(let issues)? = parsed["issues"] {
                for issue in issues { message += "\n  \(issue["path"]?.string ?? ""): \(issue["message"]?.string ?? "")" }
            }
            throw CLIError(message)
        }
        return parsed
    }

    /// Every item of a paged list.
    func all(_ path: String) throws -> [JSONValue] {
        var items: [JSONValue] = []
        var after: String? = nil
        repeat {
            let page = try self.call("GET", path + "?limit=1000" + (after.map { "&after=" + Self.escape($0) } ?? ""))
            if case .array(let some)? = page["items"] { items += some }
            after = page["next"]?.string
        } while after != nil
        return items
    }

    static func escape(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?&=+#"))) ?? segment
    }
}

/// Prints API answers as JSON or as an aligned table.
enum Printer {
    static func emit(_ value: JSONValue, _ output: APIOptions.Output, columns: [(String, @Sendable (JSONValue) -> String)]) {
        switch output {
        case .json:
            print(value.serialized)
        case .table:
            if case .array(let items) = value {
                self.table(items, columns)
            } else {
                self.table([value], columns)
            }
        }
    }

    static func table(_ items: [JSONValue], _ columns: [(String, @Sendable (JSONValue) -> String)]) {
        let rows = [columns.map(\.0)] + items.map { item in columns.map { $0.1(item) } }
        var widths = Array(repeating: 0, count: columns.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        for row in rows {
            let cells = row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            print(cells.joined(separator: "  "))
        }
    }

    static func text(_ value: JSONValue?) -> String {
        switch value {
        case .string(let s)?: return s
        case .number(let n)?: return n == n.rounded() ? String(Int64(n)) : String(n)
        case .bool(let b)?: return String(b)
        case .array(let items)?: return items.map { self.text($0) }.joined(separator: ",")
        case .object?: return value?.serialized ?? ""
        case .null?, nil: return ""
        }
    }
}
