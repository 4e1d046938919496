import VLMCLIP
import VLMTensor

/// Class embeddings of readable templates, and ensembles of them (open_clip's zero-shot recipe:
/// mean of the normalised per-template embeddings, renormalised).
struct TemplateEmbeddings {
    let clip: CLIPModel
    let tokenizer: CLIPTokenizer
    let classNames: [String]

    /// [class][dim], unit rows, for one template.
    func classWeights(_ template: String, compute: ComputeContext) throws -> [[Float]] {
        let rows = classNames.map { tokenizer.tokenize(PromptTemplates.fill(template, with: $0), contextLength: clip.config.text.contextLength) }
        return try clip.encodeText(rows, compute: compute)
    }

    static func ensemble(_ perTemplate: [[[Float]]]) -> [[Float]] {
        let classes = perTemplate[0].count, dim = perTemplate[0][0].count
        return (0..<classes).map { c in
            var sum = [Float](repeating: 0, count: dim)
            for template in perTemplate { for d in 0..<dim { sum[d] += template[c][d] } }
            return l2Normalized(sum)
        }
    }
}

/// Greedy forward selection of a template ensemble: starting from nothing, repeatedly add the bank
/// template whose addition gives the lowest training cross-entropy; after each addition the
/// ensemble is scored on validation, and the best prefix on validation (accuracy, then loss; the
/// shorter on ties) is the result.
struct TemplateBankSelection {
    let bank: [String]
    /// Per bank template: [class][dim] unit class embeddings.
    let embeddings: [[[Float]]]
    let logitScale: Float
    let maximumTemplates: Int

    struct Outcome {
        var chosen: [String]
        var classWeights: [[Float]]
        var trainAccuracy: Double
        var validationAccuracy: Double
        var stepsRun: Int
        var cancelled: Bool
    }

    func run(train: FeatureSet, validation: FeatureSet, compute: ComputeContext,
             onStep: (PromptLearningStep) -> Void) -> Outcome {
        var order: [Int] = []
        var best: (count: Int, accuracy: Double, loss: Double) = (0, -1, .infinity)
        var cancelled = false
        let rounds = min(maximumTemplates, bank.count)
        for round in 0..<rounds {
            if compute.isCancelled { cancelled = true; break }
            let remaining = bank.indices.filter { !order.contains($0) }
            let candidates = remaining.map { t -> (Int, Double, Double) in
                let trial = score(classWeights: TemplateEmbeddings.ensemble((order + [t]).map { embeddings[$0] }),
                                  images: train, logitScale: logitScale)
                return (t, trial.crossEntropy, trial.accuracy)
            }
            let (next, loss, trainAccuracy) = candidates.min { $0.1 < $1.1 }!
            order.append(next)
            let onValidation = score(classWeights: TemplateEmbeddings.ensemble(order.map { embeddings[$0] }),
                                     images: validation, logitScale: logitScale)
            if onValidation.accuracy > best.accuracy || (onValidation.accuracy == best.accuracy && onValidation.crossEntropy < best.loss) {
                best = (order.count, onValidation.accuracy, onValidation.crossEntropy)
            }
            onStep(PromptLearningStep(step: round + 1, totalSteps: rounds, loss: Float(loss), trainAccuracy: trainAccuracy,
                                      validationAccuracy: onValidation.accuracy, prompt: bank[next], learningRate: nil))
        }
        // Cancelled before the first round: the first bank template.
        let chosen = order.isEmpty ? [0] : Array(order.prefix(best.count))
        let weights = TemplateEmbeddings.ensemble(chosen.map { embeddings[$0] })
        return Outcome(chosen: chosen.map { bank[$0] }, classWeights: weights,
                       trainAccuracy: score(classWeights: weights, images: train, logitScale: logitScale).accuracy,
                       validationAccuracy: score(classWeights: weights, images: validation, logitScale: logitScale).accuracy,
                       stepsRun: order.count, cancelled: cancelled)
    }
}
