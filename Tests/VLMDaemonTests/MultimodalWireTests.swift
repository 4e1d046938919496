import Foundation
import Testing
import VLMWire
@testable import VLMDaemon
@testable import VLMReasoning

/// generate's multimodal wire forms: message content as text or parts, and per-sentence attention maps,
/// checked against the JSON written out here.
struct MultimodalWireTests {
    func params(_ json: String) throws -> GenerateParams { try JSONCoding.decode(GenerateParams.self, from: Data(json.utf8)) }

    @Test func messageContentIsTextOrParts() throws {
        let p = try params(#"{"messages": [{"role": "user", "content": "hi <__media__>"}, {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image", "image": {"path": "/x.png"}}]}], "images": [{"imageId": "img_1"}]}"#)
        guard case .text("hi <__media__>") = p.messages?[0].content, case let .parts(parts)? = p.messages?[1].content else {
            Issue.record("content not decoded as text then parts"); return
        }
        #expect(parts.map(\.type) == ["text", "image"] && parts[0].text == "a" && parts[1].image?.path == "/x.png")
        #expect(p.hasImages)
        #expect(try !params(#"{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]}"#).hasImages)
        #expect(throws: (any Error).self) { try params(#"{"messages": [{"role": "user", "content": 3}]}"#) }
        // Encoded back as it came.
        #expect(try JSONCoding.value(of: p.messages![1]) ==
                ["role": "user", "content": [["type": "text", "text": "a"], ["type": "image", "image": ["path": "/x.png"]]]])
    }

    @Test func sentenceAttentionNumbersEachImagesMapWithItsCellEdges() throws {
        let sentence = SentenceAttention(text: "A cat.", maps: [
            AttributionMap(gridHeight: 1, gridWidth: 2, scores: [0.25, 0.25], normalization: "n"),
            AttributionMap(gridHeight: 1, gridWidth: 1, scores: [0.5], normalization: "n"),
        ])
        let geometries = [ImageTokenGeometry(width: 30, height: 10, columnEdges: [0, 12.5, 30], rowEdges: [0, 10], tokenRegions: []),
                          .wholeImage(width: 8, height: 6, tokens: 4)]
        #expect(try JSONCoding.value(of: wireSentence(sentence, index: 3, geometries: geometries)) == ["sentence": 3, "text": "A cat.", "maps": [
            ["image": 0, "gridHeight": 1, "gridWidth": 2, "scores": [0.25, 0.25], "columnEdges": [0, 12.5, 30], "rowEdges": [0, 10]],
            ["image": 1, "gridHeight": 1, "gridWidth": 1, "scores": [0.5], "columnEdges": [0, 8], "rowEdges": [0, 6]],
        ]])
    }
}
