import Foundation
import VLMTensor

/// Gradient descent on the context vectors: CoOp (`.soft`) and PEZ (`.projected`).
///
/// PEZ step: project the soft vectors onto their nearest tokens, take loss and gradient *at the
/// projection*, apply that gradient to the soft vectors. The prompt that is evaluated (validation,
/// best state, result) is always the projected one, so what is reported is exactly readable text.
struct SoftPromptTrainer {
    let objective: PromptObjective
    let vocabulary: TokenVocabulary
    let configuration: PromptLearningConfiguration

    struct Outcome {
        var best: ContextVectors  // soft vectors (their projection when projected)
        var bestValidationAccuracy: Double
        var bestStep: Int
        var stepsRun: Int
        var stoppedEarly: Bool
        var cancelled: Bool
        var initialLoss: Float?
        var finalLoss: Float?
    }

    var projects: Bool { configuration.method == .projected }

    /// The prompt actually used for a soft state: the state itself, or its projection.
    func effective(_ context: ContextVectors) -> ContextVectors {
        projects ? vocabulary.project(context, metric: configuration.projectionMetric).0 : context
    }

    /// Nearest-token reading of a state, one string per group.
    func decode(_ context: ContextVectors) -> [String] {
        vocabulary.read(context, metric: configuration.projectionMetric).map(\.text)
    }

    func run(initial: ContextVectors, train: FeatureSet, validation: FeatureSet,
             compute: ComputeContext, onStep: (PromptLearningStep) -> Void) -> Outcome {
        let schedule = LearningRateSchedule(base: configuration.learningRate, steps: configuration.steps,
                                            warmup: configuration.warmupSteps, cosine: configuration.cosineSchedule)
        var optimiser = ParameterOptimiser(kind: configuration.optimiser, count: initial.values.count)
        var context = initial
        let start = score(classWeights: objective.classWeights(effective(context)), images: validation, logitScale: objective.logitScale)
        var outcome = Outcome(best: effective(context), bestValidationAccuracy: start.accuracy, bestStep: 0, stepsRun: 0,
                              stoppedEarly: false, cancelled: false, initialLoss: nil, finalLoss: nil)
        var bestValidationLoss = start.crossEntropy
        var evaluationsWithoutImprovement = 0
        for step in 0..<configuration.steps {
            if compute.isCancelled { outcome.cancelled = true; break }
            let point = effective(context)
            let evaluation = objective.evaluate(point, images: train)
            var gradient = evaluation.contextGradient
            var loss = evaluation.loss
            if configuration.vocabularyDistanceWeight > 0 {
                let (penalty, penaltyGradient) = vocabulary.distancePenalty(context, weight: configuration.vocabularyDistanceWeight)
                loss += penalty
                addInPlace(&gradient, penaltyGradient)
            }
            if outcome.initialLoss == nil { outcome.initialLoss = loss }
            outcome.finalLoss = loss
            let rate = schedule.rate(at: step)
            optimiser.update(&context.values, gradient: gradient, rate: rate)
            outcome.stepsRun = step + 1

            var validationAccuracy: Double?
            let isLast = step + 1 == configuration.steps
            if (step + 1) % max(configuration.evaluationInterval, 1) == 0 || isLast {
                let current = effective(context)
                let result = score(classWeights: objective.classWeights(current), images: validation, logitScale: objective.logitScale)
                validationAccuracy = result.accuracy
                // Better accuracy wins; equal accuracy with lower validation loss also counts.
                if result.accuracy > outcome.bestValidationAccuracy
                    || (result.accuracy == outcome.bestValidationAccuracy && result.crossEntropy < bestValidationLoss) {
                    outcome.best = current
                    outcome.bestValidationAccuracy = result.accuracy
                    outcome.bestStep = step + 1
                    bestValidationLoss = result.crossEntropy
                    evaluationsWithoutImprovement = 0
                } else {
                    evaluationsWithoutImprovement += 1
                }
            }
            onStep(PromptLearningStep(
                step: step + 1, totalSteps: configuration.steps, loss: loss, trainAccuracy: evaluation.accuracy,
                validationAccuracy: validationAccuracy, prompt: decode(context).first ?? "", learningRate: rate))
            if let patience = configuration.patience, evaluationsWithoutImprovement >= patience {
                outcome.stoppedEarly = true
                break
            }
        }
        return outcome
    }
}

