import VLMCLIP
import VLMTensor

/// LLM-as-optimiser (OPRO-style): each round the proposer sees the best templates so far with their
/// training accuracies and proposes new ones; valid candidates are scored with CLIP on the training
/// shots and join the pool. The result is the best template on the training shots (accuracy, then
/// loss). Invalid proposals are dropped, so the result is always a valid template (at worst one of
/// the seeds it started from).
struct LanguageModelSearch {
    let proposer: any TemplateProposer
    let templates: TemplateEmbeddings
    let logitScale: Float
    let rounds: Int
    let candidatesPerRound: Int
    /// Examples shown to the proposer each round.
    static let examplesShown = 5

    struct Scored { var template: String; var weights: [[Float]]; var accuracy: Double; var loss: Double }

    struct Outcome {
        var best: Scored
        var proposalsSeen: Int
        var validProposals: Int
        var roundsRun: Int
        var cancelled: Bool
    }

    func run(seeds: [String], train: FeatureSet, validation: FeatureSet, contextLength: Int,
             compute: ComputeContext, onStep: (PromptLearningStep) -> Void) throws -> Outcome {
        var pool: [Scored] = []
        for seed in seeds where !pool.contains(where: { $0.template == seed }) {
            pool.append(try scored(seed, train: train, compute: compute))
        }
        var outcome = Outcome(best: ranked(pool)[0], proposalsSeen: 0, validProposals: 0, roundsRun: 0, cancelled: false)
        for round in 1...rounds {
            if compute.isCancelled { outcome.cancelled = true; break }
            let examples = ranked(pool).prefix(Self.examplesShown).map { (template: $0.template, accuracy: $0.accuracy) }
            let proposals = try proposer.propose(examples: Array(examples), count: candidatesPerRound, round: round,
                                                 compute: compute)
            outcome.proposalsSeen += proposals.count
            for raw in proposals {
                guard let template = TemplateCandidate.parse(raw, tokenizer: templates.tokenizer, classNames: templates.classNames,
                                                             contextLength: contextLength),
                      !pool.contains(where: { $0.template == template }) else { continue }
                outcome.validProposals += 1
                // Cancellation is honoured between rounds, so a round's scoring always completes.
                pool.append(try scored(template, train: train, compute: compute.uncancellable))
            }
            outcome.best = ranked(pool)[0]
            outcome.roundsRun = round
            onStep(PromptLearningStep(
                step: round, totalSteps: rounds, loss: Float(outcome.best.loss), trainAccuracy: outcome.best.accuracy,
                validationAccuracy: score(classWeights: outcome.best.weights, images: validation, logitScale: logitScale).accuracy,
                prompt: outcome.best.template, learningRate: nil))
        }
        return outcome
    }

    private func scored(_ template: String, train: FeatureSet, compute: ComputeContext) throws -> Scored {
        let weights = try templates.classWeights(template, compute: compute)
        let result = score(classWeights: weights, images: train, logitScale: logitScale)
        return Scored(template: template, weights: weights, accuracy: result.accuracy, loss: result.crossEntropy)
    }

    private func ranked(_ pool: [Scored]) -> [Scored] {
        pool.enumerated().sorted { a, b in
            if a.element.accuracy != b.element.accuracy { return a.element.accuracy > b.element.accuracy }
            if a.element.loss != b.element.loss { return a.element.loss < b.element.loss }
            return a.offset < b.offset
        }.map(\.element)
    }
}
