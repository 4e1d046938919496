import VLMTensor
import Foundation
import VLMCLIP
import VLMLanguage
import VLMTensor

/// One validated run: baselines, the chosen method, the final evaluation.
struct PromptLearningRun {
    let clip: CLIPModel
    let tokenizer: CLIPTokenizer
    let classNames: [String]
    let train: FeatureSet
    let validation: FeatureSet
    let test: FeatureSet?
    let configuration: PromptLearningConfiguration

    var templates: TemplateEmbeddings { TemplateEmbeddings(clip: clip, tokenizer: tokenizer, classNames: classNames) }

    func accuracy(_ weights: [[Float]]) -> SplitAccuracy {
        SplitAccuracy(validation: score(classWeights: weights, images: validation, logitScale: clip.logitScale).accuracy,
                      test: test.map { score(classWeights: weights, images: $0, logitScale: clip.logitScale).accuracy })
    }

    func execute(proposer: (any TemplateProposer)?, compute: ComputeContext,
                 onStep: (PromptLearningStep) -> Void) throws -> PromptLearningResult {
        let startWeights = try templates.classWeights(configuration.startingTemplate, compute: compute)
        let bankPerTemplate = try configuration.bank.map { try templates.classWeights($0, compute: compute) }
        let bankWeights = TemplateEmbeddings.ensemble(bankPerTemplate)
        var result = PromptLearningResult(
            learnedPrompt: LearnedPrompt(method: configuration.method, classNames: classNames,
                                         templates: [configuration.startingTemplate], context: nil, configuration: configuration),
            promptText: configuration.startingTemplate, zeroShot: accuracy(startWeights), bankEnsemble: accuracy(bankWeights),
            learned: accuracy(startWeights),
            trainAccuracy: score(classWeights: startWeights, images: train, logitScale: clip.logitScale).accuracy,
            nearestTokens: [], templates: [], fluency: nil, initialTrainingLoss: nil, finalTrainingLoss: nil,
            stepsRun: 0, bestStep: 0, stoppedEarly: false, cancelled: false, configuration: configuration)
        let finalWeights: [[Float]]
        switch configuration.method {
        case .soft, .projected, .names:
            finalWeights = try learnContext(anchors: bankWeights, into: &result, compute: compute, onStep: onStep)
        case .templateBank:
            let selection = TemplateBankSelection(bank: configuration.bank, embeddings: bankPerTemplate, logitScale: clip.logitScale,
                                                  maximumTemplates: configuration.maximumBankTemplates)
            let outcome = selection.run(train: train, validation: validation, compute: compute, onStep: onStep)
            finalWeights = outcome.classWeights
            result.templates = outcome.chosen
            result.learnedPrompt.templates = outcome.chosen
            (result.stepsRun, result.bestStep, result.cancelled) = (outcome.stepsRun, outcome.chosen.count, outcome.cancelled)
        case .languageModel:
            let search = LanguageModelSearch(proposer: proposer!, templates: templates, logitScale: clip.logitScale,
                                             rounds: configuration.languageModelRounds,
                                             candidatesPerRound: configuration.languageModelCandidates)
            let outcome = try search.run(seeds: [configuration.startingTemplate] + configuration.bank, train: train,
                                         validation: validation, contextLength: clip.config.text.contextLength,
                                         compute: compute, onStep: onStep)
            finalWeights = outcome.best.weights
            result.templates = [outcome.best.template]
            result.learnedPrompt.templates = [outcome.best.template]
            (result.stepsRun, result.cancelled) = (outcome.roundsRun, outcome.cancelled)
            (result.proposalsReceived, result.validProposals) = (outcome.proposalsSeen, outcome.validProposals)
        }
        // Learned names read as the template filled with each class's nearest words.
        result.promptText = (configuration.method == .names ? result.templates : result.learnedPrompt.templates).joined(separator: "; ")
        result.learned = accuracy(finalWeights)
        result.trainAccuracy = score(classWeights: finalWeights, images: train, logitScale: clip.logitScale).accuracy
        return result
    }

    /// CoOp / PEZ (with the optional KgCoOp and vocabulary-distance penalties).
    private func learnContext(anchors: [[Float]], into result: inout PromptLearningResult, compute: ComputeContext,
                              onStep: (PromptLearningStep) -> Void) throws -> [[Float]] {
        let weights = clip.textTowerWeights
        let initial = initialContext(weights: weights)
        let layout = try PromptLayout(tokenizer: tokenizer, classNames: classNames, contextLength: initial.count, classSpecific: initial.classSpecific,
                                      maximumTokens: weights.contextLength, slot: configuration.contextSlot)
        var objective = PromptObjective(tower: DifferentiableTextTower(weights: weights), layout: layout, logitScale: clip.logitScale,
                                        compute: compute)
        if configuration.textAnchorWeight > 0 {
            objective.anchors = anchors
            objective.anchorWeight = configuration.textAnchorWeight
        }
        let vocabulary = TokenVocabulary(tokenizer: tokenizer, tokenEmbedding: weights.tokenEmbedding, width: weights.width)
        let trainer = SoftPromptTrainer(objective: objective, vocabulary: vocabulary, configuration: configuration)
        let outcome = trainer.run(initial: initial, train: train, validation: validation, compute: compute, onStep: onStep)
        let reading = vocabulary.read(outcome.best, metric: configuration.projectionMetric)
        let texts = reading.map { $0.text + " {}." }
        result.nearestTokens = reading
        result.learnedPrompt.context = outcome.best
        result.learnedPrompt.templates = texts
        result.templates = configuration.method == .projected ? texts : []
        if configuration.method == .names {
            try readNames(reading.map(\.text), into: &result, compute: compute)
        }
        result.initialTrainingLoss = outcome.initialLoss
        result.finalTrainingLoss = outcome.finalLoss
        (result.stepsRun, result.bestStep) = (outcome.stepsRun, outcome.bestStep)
        (result.stoppedEarly, result.cancelled) = (outcome.stoppedEarly, outcome.cancelled)
        return objective.classWeights(outcome.best)
    }

    /// Learned names read as their nearest words: the readable prompts (the template filled with
    /// each class's words) and the accuracy of those real words in place of the learned vectors.
    private func readNames(_ words: [String], into result: inout PromptLearningResult, compute: ComputeContext) throws {
        let template = configuration.startingTemplate
        let readable = TemplateEmbeddings(clip: clip, tokenizer: tokenizer, classNames: words)
        result.nearestWordNames = words
        result.nearestWordAccuracy = accuracy(try readable.classWeights(template, compute: compute))
        result.learnedPrompt.templates = [template]
        result.templates = words.map { PromptTemplates.fill(template, with: $0) }
    }

    /// The phrase's token embeddings (M = its token count), or N(0, 0.02²) vectors from the seed.
    /// Learned names start from each class name's mean token embedding (M = 1), or, with a random
    /// initialisation, from `contextLength` random vectors per class.
    func initialContext(weights: TextTowerWeights) -> ContextVectors {
        let width = weights.width
        let groups = configuration.classSpecific || configuration.method == .names ? classNames.count : 1
        switch configuration.initialisation {
        case .phrase where configuration.method == .names:
            let values = classNames.flatMap { name in
                meanTokenEmbedding(tokenizer.encode(name), weights: weights)
            }
            return ContextVectors(count: 1, width: width, classSpecific: true, values: values)
        case let .phrase(text):
            let ids = tokenizer.encode(text)
            let vectors = ids.flatMap { Array(weights.tokenEmbedding[Int($0) * width..<(Int($0) + 1) * width]) }
            return ContextVectors(count: ids.count, width: width, classSpecific: configuration.classSpecific,
                                  values: Array([[Float]](repeating: vectors, count: groups).joined()))
        case .random:
            var rng = SplitMix64(seed: configuration.seed)
            let values = (0..<groups * configuration.contextLength * width).map { _ in Float(0.02 * rng.nextGaussian()) }
            return ContextVectors(count: configuration.contextLength, width: width, classSpecific: groups > 1, values: values)
        }
    }

    private func meanTokenEmbedding(_ ids: [Int32], weights: TextTowerWeights) -> [Float] {
        let width = weights.width
        var mean = [Float](repeating: 0, count: width)
        for id in ids {
            for d in 0..<width { mean[d] += weights.tokenEmbedding[Int(id) * width + d] / Float(ids.count) }
        }
        return mean
    }
}
