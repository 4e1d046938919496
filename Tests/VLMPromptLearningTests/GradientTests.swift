import Foundation
import Testing
import VLMCLIP
import VLMTensor
@testable import VLMPromptLearning

/// One case of Fixtures/gradients.json (scripts/fixtures/make_prompt_fixtures.py: PyTorch autograd, float64).
struct GradientCase: Decodable {
    let name: String
    let model: String
    let class_names: [String]
    let context_length: Int
    let class_specific: Bool
    let tokens: [[Int32]]
    let context: [Float]
    let features: [[Float]]
    let labels: [Int]
    let anchors: [[Float]]
    let anchor_weight: Float
    let logit_scale: Double
    let class_weights: [[Double]]
    let loss: Double
    let accuracy: Double
    let gradient: [Double]

    static let all: [GradientCase] = {
        struct File: Decodable { let cases: [GradientCase] }
        let data = try! Data(contentsOf: Fixtures.directory.appendingPathComponent("gradients.json"))
        return try! JSONDecoder().decode(File.self, from: data).cases
    }()

    func objective() throws -> (PromptObjective, ContextVectors, FeatureSet) {
        let clip = Shared.model(model)
        let layout = try PromptLayout(tokenizer: Shared.tokenizer, classNames: class_names,
                                      contextLength: context_length, classSpecific: class_specific, maximumTokens: 77)
        var objective = PromptObjective(tower: DifferentiableTextTower(weights: clip.textTowerWeights),
                                        layout: layout, logitScale: clip.logitScale)
        objective.anchors = anchors
        objective.anchorWeight = anchor_weight
        let width = clip.textTowerWeights.width
        let context = ContextVectors(count: context_length, width: width, classSpecific: class_specific, values: self.context)
        return (objective, context, FeatureSet(features: features, labels: labels))
    }
}

@Suite struct GradientTests {
    @Test(arguments: GradientCase.all.map(\.name))
    func matchesPyTorchAutograd(_ name: String) throws {
        let reference = GradientCase.all.first { $0.name == name }!
        let (objective, context, images) = try reference.objective()
        #expect(objective.layout.tokens == reference.tokens, "prompt token layout differs from open_clip's tokenizer")
        let result = objective.evaluate(context, images: images)
        let lossError = abs(Double(result.loss) - reference.loss) / abs(reference.loss)
        let gradientError = maxRelativeError(result.contextGradient, reference.gradient)
        let weightError = maxRelativeError(result.classWeights.flatMap { $0 }, reference.class_weights.flatMap { $0 })
        print("\(name): loss rel err \(lossError), gradient max err / max |g| \(gradientError), class weights \(weightError)")
        #expect(lossError < 1e-4)
        #expect(gradientError < 1e-4)
        #expect(weightError < 1e-4)
        #expect(abs(result.accuracy - reference.accuracy) < 1e-9)
    }

    /// Central differences along random directions, probing in double precision around float32
    /// evaluations (ε chosen so float32 rounding of the loss stays well below the signal).
    @Test func matchesFiniteDifferences() throws {
        for reference in GradientCase.all {
            let (objective, context, images) = try reference.objective()
            let gradient = objective.evaluate(context, images: images).contextGradient
            var rng = SplitMix64(seed: 7)
            for _ in 0..<3 {
                let direction = (0..<context.values.count).map { _ in Float(rng.nextGaussian()) }
                let analytic = zip(gradient, direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let scale = context.values.map(abs).max()!
                let eps = Float(2e-3) * scale  // small against the vectors, large against float32 rounding
                func loss(_ sign: Float) -> Double {
                    var moved = context
                    for i in moved.values.indices { moved.values[i] += sign * eps * direction[i] }
                    return Double(objective.evaluate(moved, images: images).loss)
                }
                let numeric = (loss(1) - loss(-1)) / (2 * Double(eps))
                let error = abs(numeric - analytic) / max(abs(analytic), 1e-3)
                print("\(reference.name): finite difference \(numeric) vs analytic \(analytic) (rel \(error))")
                #expect(error < 5e-3)
            }
        }
    }

    /// The differentiable forward pass equals CLIPModel.encodeText when the context slots hold the
    /// embeddings of real tokens.
    @Test func forwardMatchesEncodeText() throws {
        for clip in [Shared.quickGELU, Shared.gelu] {
            let tokenizer = Shared.tokenizer
            let words = tokenizer.encode("a photo of a")
            let layout = try PromptLayout(tokenizer: tokenizer, classNames: ["cat", "pickup truck"], contextLength: words.count, classSpecific: false, maximumTokens: 77)
            let weights = clip.textTowerWeights
            let width = weights.width
            let values = words.flatMap { Array(weights.tokenEmbedding[Int($0) * width..<(Int($0) + 1) * width]) }
            let objective = PromptObjective(tower: DifferentiableTextTower(weights: weights), layout: layout, logitScale: clip.logitScale)
            let ours = objective.classWeights(ContextVectors(count: words.count, width: width, classSpecific: false, values: values))
            let expected = try clip.encodeText(["a photo of a cat.", "a photo of a pickup truck."].map { tokenizer.tokenize($0) })
            for (a, b) in zip(ours, expected) { #expect(zip(a, b).map { abs($0 - $1) }.max()! < 1e-5) }
        }
    }
}
