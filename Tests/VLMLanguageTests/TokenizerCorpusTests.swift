// Token ids identical to llama.cpp's `llama_tokenize` on a fixed corpus (English, code, digits,
// whitespace runs, CJK, emoji, accents, chat-template markers), with and without BOS and special-token
// parsing, for each tokenizer family (fixture: scripts/fixtures/make_tokenizer_fixtures.py).
import Foundation
import Testing
@testable import VLMLanguage

@Suite struct TokenizerCorpusTests {
    static func corpus() throws -> [String: Any] {
        try loadJSON(TestPaths.fixtures.appendingPathComponent("tokenizer_corpus.json"))["models"] as! [String: Any]
    }

    /// The model file behind a fixture entry, nil when a cached model is absent (and not required).
    static func modelURL(_ name: String) throws -> URL? {
        switch name {
        case "gemma3": if let url = TestPaths.gemma3 { return url }
        case "smollm2": if let url = TestPaths.smolLM2 { return url }
        case "stories260K": return TestPaths.stories
        default: return TestPaths.tinyModel(name)
        }
        if TestPaths.requireModels { throw ModelMissing(message: "\(name): model file missing but VLMD_REQUIRE_MODELS=1") }
        return nil
    }

    @Test(arguments: ["gemma3", "stories260K", "smollm2", "llama3", "qwen2"]) func idsMatchLlamaCpp(_ name: String) throws {
        guard let url = try Self.modelURL(name) else { return }
        let entry = try #require(try Self.corpus()[name] as? [String: Any])
        let tokenizer = try Tokenizer(vocabulary: Vocabulary(gguf: GGUFFile(url: url)))
        var mismatches = 0
        for c in entry["cases"] as! [[String: Any]] {
            let text = c["text"] as! String, addSpecial = c["add_special"] as! Bool, special = c["parse_special"] as! Bool
            let ids = tokenizer.encode(text, addSpecial: addSpecial, parseSpecial: special)
            if ids != int32s(c["ids"]) { mismatches += 1 }
            #expect(ids == int32s(c["ids"]), "\(name): \(text.debugDescription) addSpecial=\(addSpecial) parseSpecial=\(special)")
        }
        #expect(mismatches == 0)
    }
}
