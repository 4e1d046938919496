import Foundation
import Testing
import VLMCLIP
import VLMTensor
@testable import VLMPromptLearning

/// Method "names": the learned vectors take the class name's place inside a fixed template.
@Suite struct LearnedNamesTests {
    static let template = "a photo of a {}, a type of animal."

    static func layout(_ names: [String], contextLength: Int) throws -> PromptLayout {
        try PromptLayout(tokenizer: Shared.tokenizer, classNames: names, contextLength: contextLength, classSpecific: true,
                         maximumTokens: 77, slot: .className(template: template))
    }

    /// The embeddings of `words`' tokens, one group per word (each must be `count` tokens).
    static func embeddings(of words: [String], count: Int, weights: TextTowerWeights) -> ContextVectors {
        let width = weights.width
        let values = words.flatMap { word -> [Float] in
            let ids = Shared.tokenizer.encode(word)
            precondition(ids.count == count, "\(word) is \(ids.count) tokens")
            return ids.flatMap { Array(weights.tokenEmbedding[Int($0) * width..<(Int($0) + 1) * width]) }
        }
        return ContextVectors(count: count, width: width, classSpecific: true, values: values)
    }

    /// With the real names' token embeddings in the slots, the prompts are exactly the filled
    /// template: same token layout as the tokenizer's, same features as CLIPModel.encodeText.
    @Test func realNamesInTheSlotsGiveTheFilledTemplate() throws {
        for (clip, names, count) in [(Shared.quickGELU, ["cat", "dog"], 1), (Shared.gelu, ["pickup truck", "fire engine"], 2)] {
            let layout = try Self.layout(names, contextLength: count)
            let filled = names.map { PromptTemplates.fill(Self.template, with: $0) }
            for (row, text) in zip(layout.tokens, filled) {
                let expected = [Shared.tokenizer.startOfText] + Shared.tokenizer.encode(text) + [Shared.tokenizer.endOfText]
                #expect(Array(row[..<layout.contextStart]) == Array(expected[..<layout.contextStart]))
                #expect(Array(row[(layout.contextStart + count)...]) == Array(expected[(layout.contextStart + count)...]))
            }
            let weights = clip.textTowerWeights
            let objective = PromptObjective(tower: DifferentiableTextTower(weights: weights), layout: layout, logitScale: clip.logitScale)
            let ours = objective.classWeights(Self.embeddings(of: names, count: count, weights: weights))
            let expected = try clip.encodeText(filled.map { Shared.tokenizer.tokenize($0) })
            for (a, b) in zip(ours, expected) { #expect(zip(a, b).map { abs($0 - $1) }.max()! < 1e-5) }
        }
    }

    /// The gradient w.r.t. the name vectors agrees with central differences of the loss.
    @Test func nameGradientMatchesFiniteDifferences() throws {
        let clip = Shared.quickGELU
        let weights = clip.textTowerWeights
        let names = ["cat", "dog", "bird"]
        let objective = PromptObjective(tower: DifferentiableTextTower(weights: weights), layout: try Self.layout(names, contextLength: 1),
                                        logitScale: clip.logitScale)
        var rng = SplitMix64(seed: 5)
        let dim = clip.embedDim
        let images = FeatureSet(features: (0..<12).map { _ in l2Normalized((0..<dim).map { _ in Float(rng.nextGaussian()) }) },
                                labels: (0..<12).map { $0 % names.count })
        let context = Self.embeddings(of: names, count: 1, weights: weights)
        let gradient = objective.evaluate(context, images: images).contextGradient
        let largest = gradient.map(abs).max()!
        #expect(largest > 0)
        // The coordinates with the largest gradient in each class's vector, where float32 differences are reliable.
        for c in names.indices {
            let range = c * weights.width..<(c + 1) * weights.width
            let i = range.max { abs(gradient[$0]) < abs(gradient[$1]) }!
            let step: Float = 1e-3  // token embeddings are ~0.02 per coordinate: a small step by their scale
            var plus = context, minus = context
            plus.values[i] += step
            minus.values[i] -= step
            let numeric = (objective.evaluate(plus, images: images).loss - objective.evaluate(minus, images: images).loss) / (2 * step)
            #expect(abs(numeric - gradient[i]) <= 0.02 * largest, "class \(c): numeric \(numeric), analytic \(gradient[i])")
        }
    }

    /// On the synthetic task (features around "a bad photo of a {real name}."), names learned in that
    /// template from meaningless words lift accuracy; the result reads them back as words, scores
    /// those words, and saves a prompt that classifies exactly as the learned vectors do.
    @Test func learnedNamesLiftAccuracyRoundTripAndReadAsWords() throws {
        let task = try SyntheticTask()
        var configuration = PromptLearningConfiguration()
        configuration.method = .names
        configuration.initialisation = .phrase("a bad photo of a")
        (configuration.optimiser, configuration.learningRate, configuration.steps, configuration.seed) = (.adam, 0.01, 40, 3)
        let meaningless = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett"]
        let result = try optimisePrompt(clip: task.clip, tokenizer: Shared.tokenizer, classNames: meaningless,
                                        train: task.train, validation: task.validation, test: task.test,
                                        configuration: configuration, proposer: nil)
        #expect(result.learned.test! >= result.zeroShot.test! + 0.2, "zero-shot \(result.zeroShot), learned \(result.learned)")
        #expect(result.nearestTokens.count == meaningless.count && result.nearestTokens.allSatisfy { $0.count == 1 })
        #expect(result.nearestWordNames == result.nearestTokens.map(\.text))
        #expect(result.templates == result.nearestWordNames.map { "a bad photo of a \($0)." })
        #expect(result.nearestWordAccuracy?.test != nil)

        let url = FileManager.default.temporaryDirectory.appendingPathComponent("names-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try result.learnedPrompt.save(to: url)
        let loaded = try LearnedPrompt.load(from: url)
        #expect(loaded == result.learnedPrompt)
        let classifier = try loaded.classifierWeights(clip: task.clip, tokenizer: Shared.tokenizer)
        let accuracy = score(classWeights: classifier.weights, images: task.test, logitScale: task.clip.logitScale).accuracy
        #expect(abs(accuracy - result.learned.test!) < 1e-9)
        #expect(throws: PromptLearningError.self) {
            try loaded.classifierWeights(clip: task.clip, tokenizer: Shared.tokenizer, classNames: ["apple", "pear"])
        }
    }
}
