import Foundation
import Testing
@testable import VLMCLIP

/// CLIPTokenizer against open_clip's SimpleTokenizer on a few hundred strings (tokenizer.json).
@Suite struct TokenizerTests {
    struct Case: Decodable { let text: String; let ids: [Int32]; let decoded: String }
    struct Fixture: Decodable { let context_length: Int; let cases: [Case] }

    static let fixture: Fixture = try! JSONDecoder().decode(
        Fixture.self, from: Data(contentsOf: Fixtures.directory.appendingPathComponent("tokenizer.json")))
    static let tokenizer = try! CLIPTokenizer()

    @Test func idsMatchOpenCLIPForEveryFixtureString() {
        var mismatches: [String] = []
        for item in Self.fixture.cases {
            let expected = item.ids + [Int32](repeating: 0, count: Self.fixture.context_length - item.ids.count)
            let ours = Self.tokenizer.tokenize(item.text, contextLength: Self.fixture.context_length)
            if ours != expected { mismatches.append("\(item.text.debugDescription): \(ours.prefix(item.ids.count + 1)) vs \(item.ids)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(Self.fixture.cases.count) differ:\n\(mismatches.prefix(10).joined(separator: "\n"))")
        #expect(Self.fixture.cases.count > 300)
    }

    @Test func decodeMatchesOpenCLIP() {
        var mismatches: [String] = []
        for item in Self.fixture.cases {
            let ours = Self.tokenizer.decode(Self.tokenizer.encode(item.text))
            if ours != item.decoded { mismatches.append("\(item.decoded.debugDescription) vs \(ours.debugDescription)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10).joined(separator: "\n"))")
    }

    @Test func specialIdsAndTruncationKeepEndOfText() {
        let tokenizer = Self.tokenizer
        #expect(tokenizer.vocabularySize == 49408)
        #expect(tokenizer.startOfText == 49406 && tokenizer.endOfText == 49407)
        let long = tokenizer.tokenize(String(repeating: "cat ", count: 200))
        #expect(long.count == 77 && long.first == 49406 && long.last == 49407)
        let short = tokenizer.tokenize("a cat", contextLength: 10)
        #expect(short.count == 10 && short.suffix(5).allSatisfy { $0 == 0 })
    }

    @Test func templateBanksHaveTheirSizes() {
        #expect(PromptTemplates.cifar.count == 18)
        #expect(PromptTemplates.imagenet.count == 80)
        #expect(PromptTemplates.named("imagenet") == PromptTemplates.imagenet)
        #expect(PromptTemplates.named("nope") == nil)
        #expect(PromptTemplates.fill("a photo of a {}.", with: "dog") == "a photo of a dog.")
    }
}
