import Foundation
import Testing
import VLMWire
@testable import VLMDaemon

/// Holds protocol/vlmd.schema.json to the Swift request types, both ways: every method the daemon
/// serves has a schema entry and every entry a request type; each params, result and partial result
/// has the same keys, the same requiredness and the same JSON types as its Swift type (found by
/// `ShapeNode`); and each notification's params likewise. A field added on one side only fails here.
struct SchemaContractTests {
    static let schemaURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("protocol/vlmd.schema.json")

    static func loadSchema() throws -> JSONValue {
        try JSONCoding.decode(JSONValue.self, from: Data(contentsOf: schemaURL))
    }

    /// Requests a stdio daemon answers outside its handler table: the lifecycle inline, daemon/stop
    /// only when serving a socket (or from `vlmd` itself).
    static let answeredOutsideTheTable: [any RequestType.Type] = [InitializeRequest.self, ShutdownRequest.self, StopRequest.self]

    static func requestTypes() async -> [String: any RequestType.Type] {
        var types = await Harness().daemon.requestTypes
        for type in answeredOutsideTheTable { types[type.method] = type }
        // Registered by the test harness only.
        types[ThrowingRequest.method] = nil
        types[ComputeRequest.method] = nil
        return types
    }

    @Test func everyServedMethodIsInTheSchemaAndEverySchemaMethodIsServed() async throws {
        let schemaMethods = Set(try Self.loadSchema()["methods"]?.objectValue?.keys.map { $0 } ?? [])
        let served = Set(await Self.requestTypes().keys)
        #expect(served.subtracting(schemaMethods).isEmpty, "served but not in the schema: \(served.subtracting(schemaMethods).sorted())")
        #expect(schemaMethods.subtracting(served).isEmpty, "in the schema but not served: \(schemaMethods.subtracting(served).sorted())")
    }

    @Test func paramsResultsAndPartialResultsMatchTheSchema() async throws {
        let schema = try Self.loadSchema()
        let checker = SchemaChecker(schema: schema)
        var problems: [String] = []
        for (method, type) in await Self.requestTypes().sorted(by: { $0.key < $1.key }) {
            guard let entry = schema["methods"]?[method] else { continue }
            problems += try checker.problems(of: type, against: entry)
        }
        #expect(problems.isEmpty, "schema and Swift types disagree:\n\(problems.joined(separator: "\n"))")
    }

    @Test func notificationParamsMatchTheSchema() throws {
        let schema = try Self.loadSchema()
        let checker = SchemaChecker(schema: schema)
        let notifications: [(String, any Decodable.Type)] = [
            (Method.initialized, NoParams.self), (Method.exit, NoParams.self), (Method.cancelRequest, CancelParams.self),
            (Method.setTrace, SetTraceParams.self), (Method.logMessage, LogMessageParams.self), (Method.logTrace, LogTraceParams.self),
        ]
        var problems: [String] = []
        for (name, type) in notifications {
            guard let params = schema["notifications"]?[name]?["params"] else {
                problems.append("\(name): not in the schema's notifications"); continue
            }
            problems += checker.problems(try ShapeNode.of(type), against: params, path: name)
        }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }

    // The checker itself: each kind of disagreement is reported.

    struct Sample: Codable { var name: String; var count: Int?; var ratio: Double; var tags: [String] }

    @Test func theCheckerReportsEachKindOfDisagreement() throws {
        let agreeing: JSONValue = [
            "type": "object", "required": ["name", "ratio", "tags"],
            "properties": ["name": ["type": "string"], "count": ["type": "integer"], "ratio": ["type": "number"],
                           "tags": ["type": "array", "items": ["type": "string"]]],
        ]
        let checker = SchemaChecker(schema: ["$defs": ["Sample": agreeing]])
        let shape = try ShapeNode.of(Sample.self)
        #expect(checker.problems(shape, against: ["$ref": "#/$defs/Sample"], path: "p") == [])

        func changed(_ edit: (inout [String: JSONValue]) -> Void) -> JSONValue {
            var fields = agreeing.objectValue!
            edit(&fields)
            return .object(fields)
        }
        func properties(_ edit: @escaping (inout [String: JSONValue]) -> Void) -> JSONValue {
            changed { fields in
                var properties = fields["properties"]!.objectValue!
                edit(&properties)
                fields["properties"] = .object(properties)
            }
        }
        let cases: [(JSONValue, String)] = [
            (properties { $0["name"] = nil }, "p.name: in Swift, not in the schema"),
            (properties { $0["stray"] = ["type": "string"] }, "p.stray: in the schema, not in Swift"),
            (changed { $0["required"] = ["name", "ratio", "tags", "count"] }, "p.count: optional in Swift, required in the schema"),
            (changed { $0["required"] = ["name", "tags"] }, "p.ratio: required in Swift, optional in the schema"),
            (properties { $0["ratio"] = ["type": "integer"] }, "p.ratio: Swift has number, the schema integer"),
            (properties { $0["tags"] = ["type": "array", "items": ["type": "integer"]] }, "p.tags[]: Swift has string, the schema integer"),
        ]
        for (schema, expected) in cases {
            #expect(checker.problems(shape, against: schema, path: "p") == [expected])
        }
    }
}

/// Compares a `ShapeNode` with a JSON Schema (the subset vlmd.schema.json uses: type, enum, const,
/// properties, required, items, $ref, allOf of object parts, oneOf of alternatives).
struct SchemaChecker {
    let definitions: [String: JSONValue]

    init(schema: JSONValue) { definitions = schema["$defs"]?.objectValue ?? [:] }

    func problems<Request: RequestType>(of request: Request.Type, against entry: JSONValue) throws -> [String] {
        let method = Request.method
        var found: [String] = []
        found += problems(try ShapeNode.of(Request.Params.self), against: entry["params"] ?? [:], path: "\(method) params")
        found += problems(try ShapeNode.of(Request.Result.self), against: entry["result"] ?? [:], path: "\(method) result")
        if let streaming = request as? any StreamingRequestType.Type {
            found += try partialProblems(of: streaming, against: entry)
        } else if entry["partialResult"] != nil {
            found.append("\(method): the schema has partial results, the Swift type does not stream")
        }
        return found
    }

    private func partialProblems<Request: StreamingRequestType>(of request: Request.Type, against entry: JSONValue) throws -> [String] {
        guard let partial = entry["partialResult"] else { return ["\(Request.method): streams in Swift, no partialResult in the schema"] }
        return problems(try ShapeNode.of(Request.Partial.self), against: partial, path: "\(Request.method) partial")
    }

    func problems(_ node: ShapeNode, against schema: JSONValue, path: String) -> [String] {
        let schema = resolved(schema)
        if node.kind == .any { return [] }
        if schema["type"] == nil, schema["properties"] == nil, let alternatives = schema["oneOf"]?.arrayValue {
            let fits = alternatives.contains { problems(node, against: $0, path: path).isEmpty }
            return fits ? [] : ["\(path): fits none of the schema's alternatives"]
        }
        guard let allowed = jsonTypes(schema) else { return [] }
        let swiftType = node.kind == .unknown ? "object" : node.kind.rawValue
        guard allowed.contains(swiftType) else {
            return ["\(path): Swift has \(swiftType), the schema \(allowed.sorted().joined(separator: " or "))"]
        }
        switch node.kind {
        case .array:
            guard let element = node.element, let items = schema["items"] else { return [] }
            return problems(element, against: items, path: path + "[]")
        case .object:
            return fieldProblems(node, against: schema, path: path)
        default:
            return []
        }
    }

    private func fieldProblems(_ node: ShapeNode, against schema: JSONValue, path: String) -> [String] {
        let properties = schema["properties"]?.objectValue ?? [:]
        let required = Set(schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        var found: [String] = []
        for (key, field) in node.fields.sorted(by: { $0.key < $1.key }) {
            guard let property = properties[key] else { found.append("\(path).\(key): in Swift, not in the schema"); continue }
            if field.optional, required.contains(key) { found.append("\(path).\(key): optional in Swift, required in the schema") }
            if !field.optional, !required.contains(key) { found.append("\(path).\(key): required in Swift, optional in the schema") }
            found += problems(field.node, against: property, path: "\(path).\(key)")
        }
        for key in properties.keys.sorted() where node.fields[key] == nil {
            found.append("\(path).\(key): in the schema, not in Swift")
        }
        return found
    }

    /// The schema with its `$ref` followed and the properties and requirements of its `allOf` parts merged in.
    func resolved(_ schema: JSONValue) -> JSONValue {
        guard var fields = schema.objectValue else { return schema }
        if let reference = fields.removeValue(forKey: "$ref")?.stringValue {
            let name = String(reference.split(separator: "/").last ?? "")
            fields = merged(resolved(definitions[name] ?? [:]).objectValue ?? [:], with: fields)
        }
        for part in fields.removeValue(forKey: "allOf")?.arrayValue ?? [] {
            fields = merged(fields, with: resolved(part).objectValue ?? [:])
        }
        return .object(fields)
    }

    private func merged(_ base: [String: JSONValue], with extra: [String: JSONValue]) -> [String: JSONValue] {
        var result = base
        let properties = (base["properties"]?.objectValue ?? [:]).merging(extra["properties"]?.objectValue ?? [:]) { $1 }
        if !properties.isEmpty { result["properties"] = .object(properties) }
        let required = (base["required"]?.arrayValue ?? []) + (extra["required"]?.arrayValue ?? [])
        if !required.isEmpty { result["required"] = .array(required) }
        for (key, value) in extra where key != "properties" && key != "required" && key != "if" && key != "then" {
            result[key] = value
        }
        return result
    }

    /// The JSON types a schema admits, nil when it does not constrain them.
    private func jsonTypes(_ schema: JSONValue) -> Set<String>? {
        if let type = schema["type"] {
            return Set(type.stringValue.map { [$0] } ?? type.arrayValue?.compactMap(\.stringValue) ?? [])
        }
        if let values = schema["enum"]?.arrayValue ?? schema["const"].map({ [$0] }) {
            return Set(values.map { value in
                switch value {
                case .int: "integer"
                case .double: "number"
                default: value.typeName
                }
            })
        }
        return schema["properties"] != nil ? ["object"] : nil
    }
}
