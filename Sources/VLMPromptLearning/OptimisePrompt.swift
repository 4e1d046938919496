import Foundation
import VLMCLIP
import VLMLanguage
import VLMTensor

/// Few-shot prompt learning for a CLIP model on cached image features: the engine behind the
/// daemon's `optimise-prompt`.
///
/// Methods (configuration.method): `.soft` (CoOp), `.projected` (PEZ), `.names` (learned class
/// names in a fixed template), `.templateBank` (greedy ensemble selection), `.languageModel` (LM
/// proposals scored by CLIP); KgCoOp and vocabulary-distance penalties apply to the gradient methods.
///
/// All input is validated before any work. `compute`'s cancellation is checked once per optimiser
/// step (template added, LM round; LM generation also polls it per token); a cancelled run throws
/// `ComputeCancelled` whose `partial` is the best-so-far `PromptLearningResult`. Cancelling while
/// the baselines are computed (text embeddings of the bank, before any step) throws
/// `ComputeCancelled` with no partial result.
/// `onStep` reports every step.
public func optimisePrompt(
    clip: CLIPModel, tokenizer: CLIPTokenizer, classNames: [String],
    train: FeatureSet, validation: FeatureSet, test: FeatureSet? = nil,
    configuration: PromptLearningConfiguration, languageModel: LanguageModel? = nil,
    compute: ComputeContext = ComputeContext(), onStep: (PromptLearningStep) -> Void = { _ in }
) throws -> PromptLearningResult {
    let proposer = languageModel.map {
        LanguageModelProposer(model: $0, maxTokens: configuration.languageModelMaxTokens,
                              temperature: configuration.languageModelTemperature, seed: configuration.seed)
    }
    return try optimisePrompt(clip: clip, tokenizer: tokenizer, classNames: classNames, train: train, validation: validation,
                              test: test, configuration: configuration, proposer: proposer,
                              compute: compute, onStep: onStep)
}

/// As above, splitting a labelled pool first with `FewShotSplit` (configuration.shots,
/// .validationPerClass, .seed); errors name a class with too few images.
public func optimisePrompt(
    clip: CLIPModel, tokenizer: CLIPTokenizer, classNames: [String], pool: FeatureSet, test: FeatureSet? = nil,
    configuration: PromptLearningConfiguration, languageModel: LanguageModel? = nil,
    compute: ComputeContext = ComputeContext(), onStep: (PromptLearningStep) -> Void = { _ in }
) throws -> PromptLearningResult {
    try pool.validate(name: "pool", classCount: classNames.count, embedDim: clip.embedDim)
    let split = try FewShotSplit(labels: pool.labels, classNames: classNames, shots: configuration.shots,
                                 validationPerClass: configuration.validationPerClass, seed: configuration.seed)
    return try optimisePrompt(clip: clip, tokenizer: tokenizer, classNames: classNames, train: pool.subset(split.train),
                              validation: pool.subset(split.validation), test: test, configuration: configuration,
                              languageModel: languageModel, compute: compute, onStep: onStep)
}

/// The general form: `proposer` supplies LM proposals (any `TemplateProposer`, e.g. a stub in tests).
public func optimisePrompt(
    clip: CLIPModel, tokenizer: CLIPTokenizer, classNames: [String],
    train: FeatureSet, validation: FeatureSet, test: FeatureSet?,
    configuration: PromptLearningConfiguration, proposer: (any TemplateProposer)?,
    compute: ComputeContext = ComputeContext(), onStep: (PromptLearningStep) -> Void = { _ in }
) throws -> PromptLearningResult {
    try validateInputs(clip: clip, classNames: classNames, train: train, validation: validation, test: test,
                       configuration: configuration, hasProposer: proposer != nil)
    let run = PromptLearningRun(clip: clip, tokenizer: tokenizer, classNames: classNames, train: train,
                                validation: validation, test: test, configuration: configuration)
    var result = try run.execute(proposer: proposer, compute: compute, onStep: onStep)
    if let proposer, !result.cancelled, let text = result.learnedPrompt.templates.first {
        result.fluency = try proposer.fluency(of: PromptTemplates.fill(text, with: classNames[0]), compute: compute)
    }
    if result.cancelled { throw ComputeCancelled(partial: result) }
    return result
}

/// Checks everything that can be checked before work starts.
func validateInputs(clip: CLIPModel, classNames: [String], train: FeatureSet, validation: FeatureSet, test: FeatureSet?,
                    configuration c: PromptLearningConfiguration, hasProposer: Bool) throws {
    typealias E = PromptLearningError
    guard !classNames.isEmpty else { throw E.invalidInput("no class names") }
    if let bad = classNames.firstIndex(where: { $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }) {
        throw E.invalidInput("class name \(bad) is empty")
    }
    // The prompt pools at its one [EOT]; a name spelling a marker would add another.
    if let bad = classNames.first(where: { $0.contains("<end_of_text>") || $0.contains("<start_of_text>") }) {
        throw E.invalidInput("class name '\(bad)' contains a CLIP special-token marker")
    }
    if let duplicate = classNames.enumerated().first(where: { classNames[..<$0.offset].contains($0.element) }) {
        throw E.invalidInput("class name '\(duplicate.element)' appears twice")
    }
    try train.validate(name: "train", classCount: classNames.count, embedDim: clip.embedDim)
    try validation.validate(name: "validation", classCount: classNames.count, embedDim: clip.embedDim)
    try test?.validate(name: "test", classCount: classNames.count, embedDim: clip.embedDim)
    let counts = train.labels.reduce(into: [Int](repeating: 0, count: classNames.count)) { $0[$1] += 1 }
    if let missing = counts.firstIndex(of: 0) {
        throw E.notEnoughExamples("class \(missing) '\(classNames[missing])' has no training images")
    }
    guard validation.count > 0 else { throw E.notEnoughExamples("the validation set is empty") }
    switch c.method {
    case .soft, .projected, .names:
        guard c.steps >= 1 else { throw E.invalidConfiguration("steps must be at least 1, got \(c.steps)") }
        guard c.learningRate > 0, c.learningRate.isFinite else { throw E.invalidConfiguration("learning rate must be positive, got \(c.learningRate)") }
        guard c.warmupSteps >= 0, c.evaluationInterval >= 1 else { throw E.invalidConfiguration("warm-up must be ≥ 0 and the evaluation interval ≥ 1") }
        if case let .phrase(text) = c.initialisation, text.trimmingCharacters(in: .whitespaces).isEmpty {
            throw E.invalidConfiguration("the initial phrase is empty")
        }
        if case .random = c.initialisation, c.contextLength < 1 {
            throw E.invalidConfiguration("context length must be at least 1, got \(c.contextLength)")
        }
        guard c.textAnchorWeight >= 0, c.vocabularyDistanceWeight >= 0 else { throw E.invalidConfiguration("regularisation weights must be ≥ 0") }
    case .templateBank:
        guard c.maximumBankTemplates >= 1 else { throw E.invalidConfiguration("maximumBankTemplates must be at least 1") }
    case .languageModel:
        guard hasProposer else { throw E.invalidConfiguration("method 'languageModel' needs a language model") }
        guard c.languageModelRounds >= 1, c.languageModelCandidates >= 1 else {
            throw E.invalidConfiguration("languageModelRounds and languageModelCandidates must be at least 1")
        }
    }
    guard !c.bank.isEmpty else { throw E.invalidConfiguration("the template bank is empty") }
    if let bad = c.bank.first(where: { !$0.contains("{}") }) {
        throw E.invalidConfiguration("bank template '\(bad)' has no {} for the class name")
    }
    if let patience = c.patience, patience < 1 { throw E.invalidConfiguration("patience must be at least 1, got \(patience)") }
}
