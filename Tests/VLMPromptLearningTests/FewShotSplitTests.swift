import Testing
@testable import VLMPromptLearning

@Suite struct FewShotSplitTests {
    let names = ["plane", "car", "bird", "cat"]
    /// 12 images per class, interleaved, except class 3 ('cat') with 7.
    var labels: [Int] { (0..<48).compactMap { i in i % 4 == 3 && i / 4 >= 7 ? nil : i % 4 } }

    @Test func drawsDisjointDeterministicSplits() throws {
        let labels = (0..<48).map { $0 % 4 }
        let a = try FewShotSplit(labels: labels, classNames: names, shots: 5, validationPerClass: 3, seed: 42)
        let b = try FewShotSplit(labels: labels, classNames: names, shots: 5, validationPerClass: 3, seed: 42)
        let c = try FewShotSplit(labels: labels, classNames: names, shots: 5, validationPerClass: 3, seed: 43)
        #expect(a == b)
        #expect(a != c)
        #expect(a.train.count == 20 && a.validation.count == 12 && a.unused.count == 16)
        #expect(Set(a.train).isDisjoint(with: a.validation) && Set(a.train).isDisjoint(with: a.unused))
        #expect(Set(a.train + a.validation + a.unused) == Set(0..<48))
        for k in 0..<4 {
            #expect(a.train.filter { labels[$0] == k }.count == 5)
            #expect(a.validation.filter { labels[$0] == k }.count == 3)
        }
    }

    @Test func namesTheClassWithTooFewImages() {
        let labels = labels
        #expect(labels.filter { $0 == 3 }.count == 7)
        #expect {
            try FewShotSplit(labels: labels, classNames: names, shots: 6, validationPerClass: 2, seed: 1)
        } throws: { error in
            "\(error)".contains("class 3 'cat' has 7 images, 6 shots + 2 validation requested")
        }
        #expect(throws: PromptLearningError.self) { try FewShotSplit(labels: [0, 1, 5], classNames: names, shots: 1, validationPerClass: 0, seed: 1) }
        #expect(throws: PromptLearningError.self) { try FewShotSplit(labels: labels, classNames: names, shots: 0, validationPerClass: 0, seed: 1) }
    }
}
