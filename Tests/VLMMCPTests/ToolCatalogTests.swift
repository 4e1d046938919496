import Foundation
import Testing
import VLMWire
@testable import VLMMCP

@Suite struct ToolCatalogTests {
    private let catalog = ToolCatalog.embedded

    /// The protocol schema as the tests read it from disk (the embedded copy must be this file).
    private func schemaOnDisk() throws -> JSONValue {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../protocol/vlmd.schema.json")
        return try JSONParser.parse(try Data(contentsOf: url), maxDepth: 256).value
    }

    @Test func everyTableRowWhoseMethodTheSchemaDefinesIsATool() throws {
        let methods = try #require(try schemaOnDisk()["methods"]?.objectValue)
        let expected = toolTable.filter { methods[$0.method] != nil }.map(\.name)
        #expect(catalog.tools.map(\.definition.name) == expected)
        #expect(expected.contains("encode_image") && expected.contains("classify") && expected.contains("load_model"))
    }

    @Test func inputSchemasAreTheMethodsParamsWithReferencesInlinedAndStreamingTokensDropped() throws {
        let schema = try schemaOnDisk()
        let classify = try #require(catalog.tool(named: "classify")).inputSchema
        let params = try #require(schema["$defs"]?["ClassifyParams"])
        #expect(classify["required"] == params["required"])
        #expect(classify["properties"]?["labels"] == params["properties"]?["labels"])
        // $ref to ImageInput replaced by its definition
        #expect(classify["properties"]?["images"]?["items"] == schema["$defs"]?["ImageInput"])
        #expect(classify["allOf"] == nil)
        #expect(!"\(classify)".contains("$ref"))
    }

    @Test func everyInputSchemaIsAnObjectAndArrayResultsAreWrapped() throws {
        for tool in catalog.tools {
            #expect(tool.inputSchema["type"] == "object", "\(tool.definition.name)")
            #expect(tool.outputSchema["type"] == "object", "\(tool.definition.name)")
        }
        let list = try #require(catalog.tool(named: "list_models"))
        #expect(list.outputSchema["properties"]?["models"]?["type"] == "array")
    }

    /// A method that lands in the schema later (attribute, encode-text) becomes a tool with no code change.
    @Test func aTableRowAppearsOnceItsMethodIsInTheSchema() throws {
        let schema: JSONValue = [
            "methods": ["attribute": ["params": ["$ref": "#/$defs/AttributeParams"], "result": ["type": "object"]]],
            "$defs": [
                "StreamingTokens": ["type": "object"],
                "AttributeParams": [
                    "allOf": [["$ref": "#/$defs/StreamingTokens"]], "type": "object", "required": ["image", "texts"],
                    "properties": ["texts": ["type": "array", "items": ["type": "string"]]],
                ],
            ],
        ]
        let catalog = ToolCatalog(schema: schema)
        #expect(catalog.tools.map(\.definition.name) == ["attribute"])
        let input = try #require(catalog.tool(named: "attribute")).inputSchema
        #expect(input["required"] == ["image", "texts"] && input["allOf"] == nil)
    }
}
