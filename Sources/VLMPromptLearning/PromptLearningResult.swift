import VLMWire

// A step and the accuracies are reported to clients exactly as the engine computes them: the
// protocol's value types are the engine's (VLMWire is a dependency-free leaf of such values).

/// Progress of one optimiser step (soft/projected), one template added (bank) or one LM round.
public typealias PromptLearningStep = OptimisePromptStep

/// Accuracy on the validation features and, when given, the test features.
public typealias SplitAccuracy = AccuracyPair

/// The outcome of `optimisePrompt`.
public struct PromptLearningResult: Sendable, Codable {
    /// The learned prompt; save it with `learnedPrompt.save(to:)`.
    public var learnedPrompt: LearnedPrompt
    /// Readable prompt: the template(s) with "{}" for the class name ("; "-joined for ensembles
    /// and class-specific contexts). Exact for projected/bank/LM; nearest-token reading for soft.
    public var promptText: String
    /// Zero-shot with the starting template (`configuration.startingTemplate`).
    public var zeroShot: SplitAccuracy
    /// Zero-shot with the mean of the whole template bank.
    public var bankEnsemble: SplitAccuracy
    /// With the learned prompt.
    public var learned: SplitAccuracy
    public var trainAccuracy: Double
    /// Soft/projected: per context group, per position, the nearest word token and the distance to it.
    public var nearestTokens: [[NearestToken]]
    /// Names: each class's learned name read as its nearest real words, and the accuracy with
    /// those words in place of the learned vectors.
    public var nearestWordNames: [String] = []
    public var nearestWordAccuracy: SplitAccuracy?
    /// Bank/LM: the selected templates.
    public var templates: [String]
    /// Mean per-token log-likelihood of the prompt text under the language model, when one was given.
    public var fluency: Double?
    /// LM search: proposals received and how many parsed into new valid templates.
    public var proposalsReceived: Int = 0
    public var validProposals: Int = 0
    public var initialTrainingLoss: Float?
    public var finalTrainingLoss: Float?
    public var stepsRun: Int
    /// Step (or round) whose state was kept (best on validation); 0 is the starting state.
    public var bestStep: Int
    public var stoppedEarly: Bool
    public var cancelled: Bool
    /// Everything needed to reproduce the run (includes the seed).
    public var configuration: PromptLearningConfiguration
}
