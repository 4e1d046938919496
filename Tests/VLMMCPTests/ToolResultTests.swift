import Foundation
import Testing
import VLMWire
@testable import VLMMCP

@Suite struct ToolResultTests {
    private let attribute = ToolDefinition(name: "attribute", method: "attribute", title: "", description: "")

    @Test func everyPNGFieldBecomesImageContentAndTheJSONTextPointsAtIt() throws {
        let result: JSONValue = [
            "clip": "demo", "gridHeight": 2, "gridWidth": 2,
            "attributions": [
                ["text": "a cat", "heatmapPNG": "iVBORw0KGgoA",
                 "selection": ["pixelBox": ["x": 1, "y": 2, "width": 30, "height": 40], "mass": 0.5]],
                ["text": "a dog", "heatmapPNG": "iVBORw0KGgoB"],
            ],
        ]
        let reply = ToolResult.success(attribute, result, structured: true)
        let content = try #require(reply["content"]?.arrayValue)
        #expect(content.filter { $0["type"] == "image" }.map { $0["data"] } == ["iVBORw0KGgoA", "iVBORw0KGgoB"])
        #expect(content.filter { $0["type"] == "image" }.allSatisfy { $0["mimeType"] == "image/png" })
        let summary = try #require(content[0]["text"]?.stringValue)
        #expect(summary.contains("Attributed 2 text(s) over a 2x2 patch grid with demo"))
        #expect(summary.contains("\"a cat\": selected x=1 y=2 30x40, 50% of the map"))
        let text = try #require(content[1]["text"]?.stringValue)
        #expect(!text.contains("iVBORw0KGgo") && text.contains("(image content 2)"))
        #expect(reply["structuredContent"] == result && reply["isError"] == false)
    }

    @Test func olderRevisionsGetNoStructuredContent() {
        #expect(ToolResult.success(attribute, ["clip": "demo"], structured: false)["structuredContent"] == nil)
    }

    @Test func failuresAreErrorResultsWithTheDaemonsCodeAndMessage() throws {
        let reply = ToolResult.failure(RPCError(code: -32004, message: "image unreadable: /x.png"))
        #expect(reply["isError"] == true)
        #expect(reply["content"]?.arrayValue?.first?["text"] == "vlmd error -32004: image unreadable: /x.png")
    }
}
