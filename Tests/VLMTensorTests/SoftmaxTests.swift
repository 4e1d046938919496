import Foundation
import Testing
import VLMTensor

/// The Double softmax conventions, on values whose answers are known in closed form.
@Suite struct DoubleSoftmaxTests {
    @Test func logSumExpIsExactOnKnownSumsAndDoesNotOverflow() {
        #expect(abs(logSumExp([0.0, log(3.0)]) - log(4.0)) < 1e-15)
        #expect(abs(logSumExp([Float(1000), 1000]) - (1000 + log(2.0))) < 1e-12)  // exp(1000) alone overflows
        #expect(logSumExp([-Float.infinity, 0]) == 0)  // a masked entry adds nothing
    }

    @Test func softmaxInDoubleSumsToOneAndFollowsTheTemperature() {
        let p = softmaxInDouble([0, Float(log(3.0))])
        #expect(abs(p[0] - 0.25) < 1e-7 && abs(p[1] - 0.75) < 1e-7)
        // T = 2 halves the log-odds: odds 3 become √3.
        let q = softmaxInDouble([0, Float(log(3.0))], temperature: 2)
        #expect(abs(q[1] / q[0] - 3.0.squareRoot()) < 1e-6)
        #expect(softmaxInDouble([1000, 1000]) == [0.5, 0.5])
        #expect(softmaxInDouble([]).isEmpty)
    }
}
