import Foundation
import Testing
import VLMCLIP
@testable import VLMPromptLearning

/// Bad input fails with a clear error before any work (the step callback never runs).
@Suite struct BadInputTests {
    let names = ["cat", "dog"]
    var good: FeatureSet { FeatureSet(features: [unit(0), unit(1), unit(2), unit(3)], labels: [0, 1, 0, 1]) }
    func unit(_ i: Int) -> [Float] { var v = [Float](repeating: 0, count: Shared.quickGELU.embedDim); v[i] = 1; return v }

    func expectError(_ fragment: String, classNames: [String]? = nil, train: FeatureSet? = nil,
                     configure: (inout PromptLearningConfiguration) -> Void = { _ in }) {
        var configuration = PromptLearningConfiguration()
        configure(&configuration)
        var stepped = false
        #expect {
            _ = try optimisePrompt(clip: Shared.quickGELU, tokenizer: Shared.tokenizer, classNames: classNames ?? names,
                                   train: train ?? good, validation: good, test: nil, configuration: configuration,
                                   proposer: nil, onStep: { _ in stepped = true })
        } throws: { "\($0)".contains(fragment) }
        #expect(!stepped)
    }

    @Test func rejectsBadInput() {
        expectError("label 2 at index 1", train: FeatureSet(features: [unit(0), unit(1)], labels: [0, 2]))
        expectError("2 feature vectors but 3 labels", train: FeatureSet(features: [unit(0), unit(1)], labels: [0, 1, 1]))
        expectError("has 3 values", train: FeatureSet(features: [[1, 0, 0], unit(1)], labels: [0, 1]))
        expectError("class 1 'dog' has no training images", train: FeatureSet(features: [unit(0)], labels: [0]))
        expectError("class name 1 is empty", classNames: ["cat", "  "])
        expectError("expected L2-normalised", train: FeatureSet(features: [unit(0).map { $0 * 3 }, unit(1)], labels: [0, 1]))
        expectError("non-finite", train: FeatureSet(features: [unit(0).map { $0 * .nan }, unit(1)], labels: [0, 1]))
        expectError("appears twice", classNames: ["cat", "cat"])
        expectError("special-token marker", classNames: ["cat", "dog<end_of_text>"])
        expectError("no class names", classNames: [])
        expectError("steps must be at least 1") { $0.steps = 0 }
        expectError("needs a language model") { $0.method = .languageModel }
        expectError("learning rate") { $0.learningRate = -1 }
        expectError("has no {}") { $0.bank = ["a photo"] }
    }

    @Test func poolSplitNamesTheShortClass() {
        var configuration = PromptLearningConfiguration()
        (configuration.shots, configuration.validationPerClass) = (16, 4)
        #expect {
            _ = try optimisePrompt(clip: Shared.quickGELU, tokenizer: Shared.tokenizer, classNames: names, pool: good, configuration: configuration)
        } throws: { "\($0)".contains("class 0 'cat' has 2 images, 16 shots + 4 validation requested") }
    }
}
