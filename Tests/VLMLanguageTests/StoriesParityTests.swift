// stories260K (F32, SentencePiece vocabulary) against llama.cpp's own outputs.
import Foundation
import Testing
@testable import VLMLanguage

@Suite struct StoriesParityTests {
    static let model = try! LanguageModel(path: TestPaths.stories, contextLength: 256)

    /// /work/shared's reference: prompt tokenization and 64 greedy tokens for four prompts.
    @Test func sharedReferenceGreedyContinuations() throws {
        let reference = try loadJSON(TestPaths.shared.appendingPathComponent("models/stories260K.reference.json"))
        for run in reference["runs"] as! [[String: Any]] {
            let prompt = run["prompt"] as! String
            let ids = Self.model.tokenize(prompt)
            #expect(ids == int32s(run["prompt_token_ids"]), "prompt \(prompt.debugDescription)")
            let expected = int32s(run["greedy_token_ids"])
            let result = try Self.model.generate(prompt: ids, parameters: SamplingParameters(maxTokens: expected.count))
            #expect(result.tokenIDs == expected, "prompt \(prompt.debugDescription)")
            #expect(result.text == run["greedy_text"] as! String)
        }
    }
}
