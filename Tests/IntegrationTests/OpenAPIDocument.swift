import Foundation
import Shared
import Yams

/// openapi/portcullis-admin.yaml, and a check that a real response is one
/// it describes: the path and method exist, the status is documented, and
/// the JSON body matches the schema (type, required, properties,
/// additionalProperties, items, enum, $ref: the subset the file uses).
final class OpenAPIDocument: @unchecked Sendable {
    let root: [String: Any]
    private let lock = NSLock()
    private(set) var checked: Set<String> = []

    static let path: String = {
        // Tests/IntegrationTests/OpenAPIDocument.swift → repository root.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("openapi/portcullis-admin.yaml").path
    }()

    init() throws {
        let text = try String(contentsOfFile: Self.path, encoding: .utf8)
        guard let root = try Yams.load(yaml: text) as? [String: Any] else { throw HarnessError("\(Self.path) is not a YAML mapping") }
        guard (root["openapi"] as? String)?.hasPrefix("3.1") == true else { throw HarnessError("not an OpenAPI 3.1 document") }
        self.root = root
    }

    /// Every (method, path template) the document defines.
    var operations: [(method: String, template: String)] {
        let paths = self.root["paths"] as? [String: Any] ?? [:]
        return paths.flatMap { template, item in
            ((item as? [String: Any]) ?? [:]).keys.filter { ["get", "put", "post", "patch", "delete"].contains($0) }.map { ($0.uppercased(), template) }
        }
    }

    func template(for path: String) -> String? {
        let segments = path.split(separator: "?").first.map { $0.split(separator: "/") } ?? []
        let paths = self.root["paths"] as? [String: Any] ?? [:]
        let matches = paths.keys.filter { template in
            let parts = template.split(separator: "/")
            return parts.count == segments.count && zip(parts, segments).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
        }
        // A literal segment beats a parameter.
        return matches.min { $0.filter { $0 == "{" }.count < $1.filter { $0 == "{" }.count }
    }

    /// Problems with one exchange; empty when it conforms.
    func problems(method: String, path: String, status: Int, body: [UInt8]) -> [String] {
        guard let template = self.template(for: path) else { return ["\(method) \(path): no path in the document"] }
        guard let item = (self.root["paths"] as? [String: Any])?[template] as? [String: Any],
            let operation = item[method.lowercased()] as? [String: Any]
        else { return ["\(method) \(template): no such operation"] }
        self.lock.lock()
        self.checked.insert("\(method) \(template)")
        self.lock.unlock()
        guard let responses = operation["responses"] as? [String: Any], var response = responses[String(status)] as? [String: Any] else {
            return ["\(method) \(template): status \(status) is not documented"]
        }
        if let ref = response["$ref"] as? String, let resolved = self.resolve(ref) { response = resolved }
        let where_ = "\(method) \(template) \(status)"
        guard let content = response["content"] as? [String: Any], let json = content["application/json"] as? [String: Any],
            let schema = json["schema"] as? [String: Any]
        else {
            return body.isEmpty ? [] : ["\(where_): the document says no body, got \(body.count) bytes"]
        }
        guard let value = try? JSONValue.parse(body) else { return ["\(where_): body is not JSON"] }
        return self.validate(value, schema, at: where_ + " $")
    }

    private func resolve(_ ref: String) -> [String: Any]? {
        guard ref.hasPrefix("#/") else { return nil }
        var node: Any = self.root
        for part in ref.dropFirst(2).split(separator: "/") {
            guard let next = (node as? [String: Any])?[String(part)] else { return nil }
            node = next
        }
        return node as? [String: Any]
    }

    func validate(_ value: JSONValue, _ schema: [String: Any], at path: String) -> [String] {
        if let ref = schema["$ref"] as? String {
            guard let resolved = self.resolve(ref) else { return ["\(path): unresolvable \(ref)"] }
            return self.validate(value, resolved, at: path)
        }
        var problems: [String] = []
        if let type = schema["type"] {
            let allowed = (type as? [Any])?.compactMap { $0 as? String } ?? [(type as? String) ?? ""]
            guard allowed.contains(where: { Self.matches(value, $0) }) else { return ["\(path): expected \(allowed), got \(value.serialized.prefix(80))"] }
        }
        if let options = schema["enum"] as? [Any] {
            let texts = options.map { "\($0)" }
            if let text = value.string, !texts.contains(text) { problems.append("\(path): \(text) is not one of \(texts)") }
        }
        if case .object(let members) = value {
            for name in (schema["required"] as? [Any] ?? []).compactMap({ $0 as? String }) where members[name] == nil {
                problems.append("\(path): missing required \(name)")
            }
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for (name, member) in members {
                if let sub = properties[name] as? [String: Any] {
                    problems += self.validate(member, sub, at: "\(path).\(name)")
                } else if let extra = schema["additionalProperties"] {
                    if let allowed = extra as? Bool, !allowed {
                        problems.append("\(path): unexpected property \(name)")
                    } else if let sub = extra as? [String: Any] {
                        problems += self.validate(member, sub, at: "\(path).\(name)")
                    }
                }
            }
        }
        if case .array(let items) = value, let sub = schema["items"] as? [String: Any] {
            for (i, item) in items.enumerated() { problems += self.validate(item, sub, at: "\(path)[\(i)]") }
        }
        return problems
    }

    private static func matches(_ value: JSONValue, _ type: String) -> Bool {
        switch (type, value) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool), ("null", .null), ("number", .number): return true
        case ("integer", .number(let n)): return n == n.rounded()
        default: return false
        }
    }
}
