import Foundation
import VLMCLIP
import VLMTensor

/// The training objective of soft-prompt learning and its gradient w.r.t. the context vectors:
///
///     w_c  = normalize(text tower(prompt_c(ctx)))
///     z_ic = logitScale · f_i · w_c                  (f_i: normalised image features, frozen)
///     L    = mean_i CE(z_i, y_i) + λ_kg · mean_c ‖w_c − w̄_c‖²  (KgCoOp; w̄_c from the template bank)
///
/// The distance-to-vocabulary penalty acts on the context vectors directly (see `TokenVocabulary`).
struct PromptObjective: Sendable {
    let tower: DifferentiableTextTower
    let layout: PromptLayout
    let logitScale: Float
    /// Per-class anchors w̄_c for the KgCoOp penalty (unit vectors), when `anchorWeight > 0`.
    var anchors: [[Float]]?
    var anchorWeight: Float = 0
    /// The run's threads (the objective is evaluated between cancellation checks, never stopped inside).
    var compute = ComputeContext()

    struct Evaluation {
        var loss: Float  // total, including the anchor penalty
        var crossEntropy: Float
        var accuracy: Double
        var classWeights: [[Float]]
        var contextGradient: [Float]
    }

    /// Normalised class text features for `context` (forward pass only).
    func classWeights(_ context: ContextVectors) -> [[Float]] {
        let (features, _) = forwardFeatures(context)
        return rows(features, count: layout.classCount, width: tower.embedDim).map(l2Normalized)
    }

    /// Loss, accuracy and gradient on `images` (full batch).
    func evaluate(_ context: ContextVectors, images: FeatureSet) -> Evaluation {
        let (features, tape) = forwardFeatures(context)
        let e = tower.embedDim
        let raw = rows(features, count: layout.classCount, width: e)
        let norms = raw.map { max(dot($0, $0).squareRoot(), 1e-12) }
        let weights = zip(raw, norms).map { row, norm in row.map { $0 / norm } }

        var (crossEntropy, accuracy, weightGradient) = crossEntropyGradient(classWeights: weights, images: images, logitScale: logitScale)

        var penalty: Double = 0
        if let anchors, anchorWeight > 0 {
            let scale = anchorWeight / Float(layout.classCount)
            for c in weights.indices {
                for d in 0..<e {
                    let diff = weights[c][d] - anchors[c][d]
                    penalty += Double(scale * diff * diff)
                    weightGradient[c][d] += 2 * scale * diff
                }
            }
        }

        // Through the normalisation: dt = (dw − w (w·dw)) / ‖t‖.
        var featureGradient = [Float](repeating: 0, count: layout.classCount * e)
        for c in weights.indices {
            let along = dot(weights[c], weightGradient[c])
            for d in 0..<e { featureGradient[c * e + d] = (weightGradient[c][d] - weights[c][d] * along) / norms[c] }
        }
        let embeddingGradient = tower.backward(featureGradient: featureGradient, tape: tape)
        return Evaluation(
            loss: Float(crossEntropy + penalty), crossEntropy: Float(crossEntropy),
            accuracy: accuracy, classWeights: weights,
            contextGradient: layout.contextGradient(embeddingGradient, width: tower.width))
    }

    private func forwardFeatures(_ context: ContextVectors) -> ([Float], DifferentiableTextTower.Tape) {
        let embeddings = layout.embeddings(context: context, tokenEmbedding: tower.weights.tokenEmbedding, width: tower.width)
        return tower.forward(embeddings: embeddings, positions: layout.positions, segments: layout.segments,
                             pooledRows: layout.pooledRows, compute: compute)
    }
}

func rows(_ flat: [Float], count: Int, width: Int) -> [[Float]] {
    (0..<count).map { Array(flat[$0 * width..<($0 + 1) * width]) }
}

