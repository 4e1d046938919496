import Foundation
import VLMCLIP
import VLMTensor
@testable import VLMPromptLearning

/// A structured synthetic few-shot task on the tiny random CLIP: image features of class c lie
/// around the text embedding of class c under a *hidden* readable template (plus Gaussian noise),
/// so a prompt learner can recover the structure while the generic starting prompt scores poorly.
/// The noise is relative to the class spacing: `noise` × the smallest distance between two centres.
struct SyntheticTask {
    static let classNames = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    static let hiddenTemplate = "a bad photo of a {}."

    let clip: CLIPModel
    let train: FeatureSet
    let validation: FeatureSet
    let test: FeatureSet
    let pool: FeatureSet

    init(model: String = "text-gelu", shots: Int = 8, validationPerClass: Int = 8, testPerClass: Int = 20,
         noise: Float = 0.3, seed: UInt64 = 11) throws {
        clip = Shared.model(model)
        let tokenizer = Shared.tokenizer
        let centres = try clip.encodeText(Self.classNames.map { tokenizer.tokenize(PromptTemplates.fill(Self.hiddenTemplate, with: $0)) })
        var spacing = Float.infinity
        for i in centres.indices { for j in 0..<i { spacing = min(spacing, zip(centres[i], centres[j]).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()) } }
        let scale = noise * spacing / Float(centres[0].count).squareRoot()
        var rng = SplitMix64(seed: seed)
        func sample(_ perClass: Int) -> FeatureSet {
            var features: [[Float]] = [], labels: [Int] = []
            for (c, centre) in centres.enumerated() {
                for _ in 0..<perClass {
                    let noisy = centre.map { $0 + scale * Float(rng.nextGaussian()) }
                    features.append(l2Normalized(noisy))
                    labels.append(c)
                }
            }
            return FeatureSet(features: features, labels: labels)
        }
        train = sample(shots)
        validation = sample(validationPerClass)
        test = sample(testPerClass)
        pool = FeatureSet(features: train.features + validation.features, labels: train.labels + validation.labels)
    }
}
