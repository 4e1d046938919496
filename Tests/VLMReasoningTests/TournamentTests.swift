// The tournament picks the candidate the judge's scores imply.
import Testing
import VLMLanguage
@testable import VLMReasoning
import VLMTensor

@Suite struct TournamentTests {
    @Test func consistentScoresCrownTheBest() throws {
        for values in [[0.3], [0.1, 0.9], [5, 1, 4], [0.2, 0.8, 0.5, 0.1, 0.95, 0.3, 0.7, 0.6], [1, 1, 1]] {
            var played: [(Int, Int)] = []
            let (winner, verdicts) = Tournament.run(count: values.count, compare: { a, b in
                played.append((a, b))
                return (values[a], values[b])
            })
            // The first index among the maximal values (ties go to the lower index).
            #expect(winner == values.firstIndex(of: values.max()!)!, "\(values)")
            #expect(verdicts.count == values.count - 1)  // single elimination: one loss per loser
            #expect(verdicts.allSatisfy { $0.winner == ($0.scores.1 > $0.scores.0 ? $0.second : $0.first) })
            #expect(played.count == verdicts.count)
        }
    }

    /// A judge with no total order (rock-paper-scissors): the bracket decides, and each match follows its scores.
    @Test func bracketOrderWithIntransitiveJudge() {
        let beats: Set<[Int]> = [[0, 1], [1, 2], [2, 0]]
        let (winner, verdicts) = Tournament.run(count: 3) { a, b in beats.contains([a, b]) ? (1, 0) : (0, 1) }
        // Round 1: 0 beats 1; 2 has a bye. Final: 2 beats 0.
        #expect(verdicts.map { [$0.first, $0.second, $0.winner] } == [[0, 1, 0], [0, 2, 2]])
        #expect(winner == 2)
    }

    @Test func logLikelihoodJudgePrefersTheLikelierCandidate() throws {
        let stage = StageSpecification(tag: "SUMMARY", instruction: "plan.")
        let request = JudgeRequest(question: "q", stage: stage, context: "",
                                   first: JudgeCandidate(index: 0, text: "a", meanLogProbability: -2.5),
                                   second: JudgeCandidate(index: 1, text: "b", meanLogProbability: -0.5))
        let scores = try LogLikelihoodJudge().scores(request, compute: ComputeContext())
        #expect(scores == (-2.5, -0.5))
    }
}

@Suite struct PairwiseJudgeTests {
    func request(context: String, _ a: String, _ b: String, tag: String = "SUMMARY") -> JudgeRequest {
        JudgeRequest(question: "Is there a cat?", stage: StageSpecification(tag: tag, instruction: "plan."), context: context,
                     first: JudgeCandidate(index: 0, text: a, meanLogProbability: nil),
                     second: JudgeCandidate(index: 1, text: b, meanLogProbability: nil))
    }

    /// The verdict is log p(" 1") / log p(" 2") after the prompt, exactly what `LanguageModel.score` gives,
    /// whatever the judge's cache held before (it re-runs only past the common prefix).
    @Test func answersAreScoredLikeLanguageModelScore() throws {
        let model = Models.stories
        let judge = PairwiseLanguageJudge(model: model, bothOrders: false)
        let warmUp = request(context: "<SUMMARY>Lily saw a dog.</SUMMARY>\n", "The dog ran.", "A cat sat.", tag: "CAPTION")
        _ = try judge.scores(warmUp, compute: ComputeContext())
        let asked = request(context: "<SUMMARY>Lily saw a cat.</SUMMARY>\n", "It is a cat.", "It is a dog.")
        let scores = try judge.scores(asked, compute: ComputeContext())
        let rendered = judge.prompt(asked, first: "It is a cat.", second: "It is a dog.") + "\nAnswer:"
        let context = model.tokenize(rendered)
        let expected = try model.score(context: context, continuations: [" 1", " 2"].map {
            judge.continuationTokens(context: context, rendered: rendered, answer: $0)
        })
        #expect(abs(scores.first - expected[0]) < 1e-3 && abs(scores.second - expected[1]) < 1e-3, "\(scores) \(expected)")
        // Asking in both orders adds the swapped verdict.
        let both = try PairwiseLanguageJudge(model: model).scores(asked, compute: ComputeContext())
        #expect(both.first.isFinite && both.second.isFinite && both.first < scores.first)
    }

    /// A context longer than the model's window is shortened from the front until the prompt fits.
    @Test func longContextsAreShortenedToFit() throws {
        let judge = PairwiseLanguageJudge(model: Models.stories)
        let scores = try judge.scores(request(context: String(repeating: "The cat sat on the mat. ", count: 400), "A cat.", "A dog."), compute: ComputeContext())
        #expect(scores.first.isFinite && scores.second.isFinite)
    }
}
