// The engine with SmolLM2-135M-Instruct (ChatML), the model it is meant for. These take minutes on
// two cores, so they run only with VLMD_REQUIRE_MODELS=1, and then fail if the model is absent.
import Foundation
import Testing
import VLMLanguage
@testable import VLMReasoning

@Suite struct SmolLM2Tests {
    static let model: LanguageModel? = TestPaths.smolLM2.flatMap { try? LanguageModel(path: $0, contextLength: 2048) }

    func requireModel() throws -> LanguageModel? {
        guard TestPaths.requireModels else { return nil }
        if let model = Self.model { return model }
        Issue.record("SmolLM2-135M-Instruct.Q4_1.gguf not found (VLMD_MODEL_CACHE or models-cache/)")
        return nil
    }

    /// The default LLaVA-CoT stages with beam search and the pairwise judge: every stage is produced,
    /// the chat model writes text for each, and every verdict follows its scores.
    @Test func stagedReasoningWithBeamSearch() throws {
        guard let model = try requireModel() else { return }
        var configuration = ReasoningConfiguration()
        configuration.beamWidth = 2
        configuration.maxTokensPerStage = 24
        configuration.maxSteps = 2
        configuration.seed = 5
        let log = EventLog()
        let result = try reasoner(Models.rnTiny, configuration, model: model)
            .run(image: Models.image("chelsea.png"), question: "What animal is in the photo?", onEvent: log.record)
        print(result.transcript)
        try #require(result.outcome == .completed, "\(result.outcome)")
        #expect(result.stages.map(\.tag) == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"])
        // A 135M model sometimes closes a stage at once; most stages must have text, and there are steps.
        #expect(result.stages.allSatisfy(\.complete) && result.stages.filter { !$0.text.isEmpty }.count >= 3)
        #expect(!result.steps.isEmpty)
        #expect(!log.verdicts.isEmpty)
        for v in log.verdicts {
            #expect(v.firstScore.isFinite && v.secondScore.isFinite)
            #expect(v.winner == (v.secondScore > v.firstScore ? v.second : v.first))
        }
    }

    /// The chat judge's answers are the single tokens "1" and "2" right after the assistant prompt.
    @Test func pairwiseJudgeAnswerTokens() throws {
        guard let model = try requireModel() else { return }
        let judge = PairwiseLanguageJudge(model: model)
        let rendered = model.chatTemplate!.render([ChatMessage(role: "user", content: "Which? Answer 1 or 2.")])
        let context = model.tokenize(rendered, parseSpecial: true)
        let one = judge.continuationTokens(context: context, rendered: rendered, answer: " 1")
        let two = judge.continuationTokens(context: context, rendered: rendered, answer: " 2")
        #expect(one.count == 1 && two.count == 1 && one != two)
        #expect(model.tokenizer.decode(one) == "1" && model.tokenizer.decode(two) == "2")
    }
}
