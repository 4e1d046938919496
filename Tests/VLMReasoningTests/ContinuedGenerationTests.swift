// LanguageModel.continueGeneration: the decoding loop from a prefilled (and forked) cache.
import Foundation
import Testing
import VLMLanguage
import VLMTensor

@Suite struct ContinuedGenerationTests {
    let model = Models.stories

    /// llama.cpp's greedy continuations (/work/shared's reference), decoded from a prefilled cache.
    @Test func greedyContinuationMatchesLlamaCpp() throws {
        let data = try Data(contentsOf: TestPaths.shared.appendingPathComponent("models/stories260K.reference.json"))
        let reference = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        for run in reference["runs"] as! [[String: Any]] {
            let prompt = (run["prompt_token_ids"] as! [NSNumber]).map { Int32($0.intValue) }
            let expected = (run["greedy_token_ids"] as! [NSNumber]).map { Int32($0.intValue) }
            var cache = model.transformer.makeCache(capacity: model.contextLength)
            let logits = try model.prefill(prompt, cache: &cache)
            let result = try model.continueGeneration(cache: &cache, lastLogits: logits, history: prompt,
                                                      parameters: SamplingParameters(maxTokens: expected.count))
            #expect(result.tokenIDs == expected)
            #expect(result.text == run["greedy_text"] as! String)
        }
    }

    /// Forks of one prefilled cache give exactly what `generate` gives from scratch, seed by seed, with
    /// stop strings, log-probabilities and streaming; the shared cache is left untouched.
    @Test func forkedCandidatesEqualIndependentGenerations() throws {
        let prompt = model.tokenize("Once upon a time, a cat")
        var shared = model.transformer.makeCache(capacity: model.contextLength)
        let logits = try model.prefill(prompt, cache: &shared)
        let before = shared.count
        for seed: UInt64 in [1, 2, 3, 1] {
            let parameters = SamplingParameters(temperature: 0.9, topP: 0.95, repetitionPenalty: 1.1, seed: seed, maxTokens: 40,
                                                stopStrings: [". "], logProbabilities: true)
            var fork = shared
            var streamed = ""
            let continued = try model.continueGeneration(cache: &fork, lastLogits: logits, history: prompt, parameters: parameters, onToken: {
                streamed += $0.text
            })
            let generated = try model.generate(prompt: prompt, parameters: parameters)
            #expect(continued.tokenIDs == generated.tokenIDs, "seed \(seed)")
            #expect(continued.text == generated.text)
            // As in `generate`, a stop string that spans tokens leaks its first part into the stream
            // (the earlier token was streamed before the stop was seen): the stream starts with the text.
            #expect(streamed.hasPrefix(generated.text) && ". ".hasPrefix(streamed.dropFirst(generated.text.count)),
                    "streamed \(streamed.debugDescription) text \(generated.text.debugDescription)")
            #expect(continued.stopReason == generated.stopReason)
            #expect(continued.logProbabilities == generated.logProbabilities)
            #expect(shared.count == before)
        }
    }

    @Test func cancellationAndBadLogits() throws {
        let prompt = model.tokenize("Lily")
        var cache = model.transformer.makeCache(capacity: model.contextLength)
        let logits = try model.prefill(prompt, cache: &cache)
        var tokens = 0
        let token = CancellationToken()
        let result = try model.continueGeneration(cache: &cache, lastLogits: logits, history: prompt,
                                                  parameters: SamplingParameters(maxTokens: 50),
                                                  compute: ComputeContext(cancellation: token),
                                                  onToken: { _ in tokens += 1; if tokens >= 3 { token.cancel() } })
        #expect(result.stopReason == .cancelled && result.tokenIDs.count == 3)
        #expect(throws: LanguageModelError.self) {
            try model.continueGeneration(cache: &cache, lastLogits: [1, 2, 3], history: prompt, parameters: .greedy)
        }
    }
}
