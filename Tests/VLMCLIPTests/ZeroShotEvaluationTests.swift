import Testing
@testable import VLMCLIP

/// Accuracy bookkeeping of zero-shot evaluation, on logits whose rankings are known by construction.
@Suite struct ZeroShotEvaluationTests {
    @Test func countsTopOneTopFiveAndTheConfusionMatrixAcrossBatches() {
        var evaluation = ZeroShotEvaluation(classCount: 6)
        // Image 0 (class 0): ranked first. Image 1 (class 1): ranked 2nd, predicted 5.
        evaluation.add(logits: [[9, 1, 2, 3, 4, 5], [0, 8, 1, 2, 3, 9]], labels: [0, 1])
        #expect(evaluation.count == 2 && evaluation.correct == 1 && evaluation.correctTop5 == 2)
        // Image 2 (class 2): ranked last (6th), predicted 0, so outside the top 5.
        evaluation.add(logits: [[6, 5, 0, 4, 3, 2]], labels: [2])
        #expect(evaluation.count == 3 && evaluation.correct == 1 && evaluation.correctTop5 == 2)
        #expect(evaluation.accuracy == 1.0 / 3 && evaluation.top5Accuracy == 2.0 / 3)
        var expected = Array(repeating: Array(repeating: 0, count: 6), count: 6)
        expected[0][0] = 1
        expected[1][5] = 1
        expected[2][0] = 1
        #expect(evaluation.confusion == expected)
        #expect(evaluation.perClassAccuracy == [1, 0, 0, 0, 0, 0])
    }

    @Test func anEmptyEvaluationHasNoAccuracyRatherThanNaN() {
        let evaluation = ZeroShotEvaluation(classCount: 2)
        #expect(evaluation.accuracy == 0 && evaluation.top5Accuracy == 0 && evaluation.perClassAccuracy == [0, 0])
    }
}
