import Foundation
import VLMTensor

// Zero-shot-style classification of cached image features by class text embeddings:
// logits z_ic = logitScale · f_i · w_c (both unit vectors), softmax cross-entropy.

/// Cross-entropy of one logit row, computed stably in double precision: the loss, the softmax
/// probabilities, and whether the label has the highest logit (first maximum wins ties).
func softmaxCrossEntropy(_ logits: [Double], label: Int) -> (loss: Double, probabilities: [Double], correct: Bool) {
    let logSum = logSumExp(logits)
    let predicted = logits.indices.max { logits[$0] < logits[$1] }!
    return (logSum - logits[label], logits.map { exp($0 - logSum) }, predicted == label)
}

private func logits(_ feature: [Float], _ classWeights: [[Float]], _ logitScale: Float) -> [Double] {
    classWeights.map { Double(logitScale * dot(feature, $0)) }
}

/// Accuracy and mean cross-entropy of `images` under `classWeights`.
func score(classWeights: [[Float]], images: FeatureSet, logitScale: Float) -> (accuracy: Double, crossEntropy: Double) {
    guard !images.labels.isEmpty else { return (0, 0) }
    var (correct, total) = (0, 0.0)
    for (feature, label) in zip(images.features, images.labels) {
        let result = softmaxCrossEntropy(logits(feature, classWeights, logitScale), label: label)
        total += result.loss
        if result.correct { correct += 1 }
    }
    return (Double(correct) / Double(images.labels.count), total / Double(images.labels.count))
}

/// Mean cross-entropy, accuracy, and dL/dw_c = logitScale/N · Σ_i (p_ic − [y_i = c]) · f_i.
func crossEntropyGradient(classWeights: [[Float]], images: FeatureSet, logitScale: Float)
    -> (crossEntropy: Double, accuracy: Double, weightGradient: [[Float]])
{
    let (n, dim) = (images.labels.count, classWeights[0].count)
    var gradient = [[Float]](repeating: [Float](repeating: 0, count: dim), count: classWeights.count)
    var (correct, total) = (0, 0.0)
    for (feature, label) in zip(images.features, images.labels) {
        let result = softmaxCrossEntropy(logits(feature, classWeights, logitScale), label: label)
        total += result.loss
        if result.correct { correct += 1 }
        for c in classWeights.indices {
            let scale = logitScale * Float(result.probabilities[c] - (c == label ? 1 : 0)) / Float(n)
            for d in 0..<dim { gradient[c][d] += scale * feature[d] }
        }
    }
    return (total / Double(max(n, 1)), Double(correct) / Double(max(n, 1)), gradient)
}
