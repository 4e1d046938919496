// The tournament picks the candidate the judge's scores imply.
import Testing
@testable import VLMReasoning

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
        let scores = try LogLikelihoodJudge().scores(request)
        #expect(scores == (-2.5, -0.5))
    }
}
