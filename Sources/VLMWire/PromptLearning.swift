/// Wire types for `optimise-prompt` (protocol/optimise-prompt.md).

/// Where the labelled images come from: a CIFAR-format file (train split drawn from it) or a
/// labelled image list (`path label` lines). `test` is evaluated after learning.
public struct PromptDatasetParam: Codable, Sendable {
    /// "cifar10" | "cifar100" | "cifar100-coarse" (with `path`) or "list" (with `path` to a list file).
    public var format: String?
    public var path: String
    /// Class names in label order (CIFAR formats), or `labelsFile`. Lists take their labels from the file.
    public var labels: [String]?
    public var labelsFile: String?
    /// A test file in the same format.
    public var test: String?
    /// Evaluate only the first N test records.
    public var testLimit: Int?

    public init(format: String? = nil, path: String, labels: [String]? = nil, labelsFile: String? = nil, test: String? = nil,
                testLimit: Int? = nil) {
        self.format = format; self.path = path; self.labels = labels; self.labelsFile = labelsFile; self.test = test
        self.testLimit = testLimit
    }
}

public struct OptimisePromptParams: Codable, Sendable {
    /// CLIP model id (optional when one is loaded); `lm`: GGUF model id for method "lm" (optional when one is loaded).
    public var model: String?
    public var lm: String?
    public var dataset: PromptDatasetParam
    /// "coop" (soft context), "pez" (projected onto real tokens), "bank" (template-bank selection), "lm" (language-model proposals), "names" (learned class names in a fixed template).
    public var method: String
    public var shots: Int?
    public var validationPerClass: Int?
    /// Context vectors M (random init); a phrase init sets M to its token count.
    public var contextLength: Int?
    public var classSpecific: Bool?
    /// A phrase ("a photo of a") or "random".
    public var initialisation: String?
    /// "sgd" | "adam".
    public var optimiser: String?
    public var learningRate: Float?
    public var steps: Int?
    public var warmupSteps: Int?
    public var cosineSchedule: Bool?
    public var evaluationInterval: Int?
    public var patience: Int?
    /// KgCoOp penalty weight (keeps class text embeddings near the bank's).
    public var textAnchorWeight: Float?
    /// Penalty weight pulling context vectors toward real token embeddings.
    public var vocabularyDistanceWeight: Float?
    /// A bank name ("cifar", "imagenet") or a list of templates with {}.
    public var bank: TemplatesParam?
    public var maximumBankTemplates: Int?
    public var languageModelRounds: Int?
    public var languageModelCandidates: Int?
    public var seed: UInt64?
    /// Save the learned prompt under this name (in the daemon's prompts directory); `classify`
    /// loads it with `learnedPrompt`.
    public var saveAs: String?
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(model: String? = nil, lm: String? = nil, dataset: PromptDatasetParam, method: String, shots: Int? = nil,
                validationPerClass: Int? = nil, contextLength: Int? = nil, classSpecific: Bool? = nil,
                initialisation: String? = nil, optimiser: String? = nil, learningRate: Float? = nil, steps: Int? = nil,
                warmupSteps: Int? = nil, cosineSchedule: Bool? = nil, evaluationInterval: Int? = nil, patience: Int? = nil,
                textAnchorWeight: Float? = nil, vocabularyDistanceWeight: Float? = nil, bank: TemplatesParam? = nil,
                maximumBankTemplates: Int? = nil, languageModelRounds: Int? = nil, languageModelCandidates: Int? = nil,
                seed: UInt64? = nil, saveAs: String? = nil, workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) {
        self.model = model; self.lm = lm; self.dataset = dataset; self.method = method; self.shots = shots
        self.validationPerClass = validationPerClass; self.contextLength = contextLength; self.classSpecific = classSpecific
        self.initialisation = initialisation; self.optimiser = optimiser; self.learningRate = learningRate; self.steps = steps
        self.warmupSteps = warmupSteps; self.cosineSchedule = cosineSchedule; self.evaluationInterval = evaluationInterval
        self.patience = patience; self.textAnchorWeight = textAnchorWeight
        self.vocabularyDistanceWeight = vocabularyDistanceWeight; self.bank = bank
        self.maximumBankTemplates = maximumBankTemplates; self.languageModelRounds = languageModelRounds
        self.languageModelCandidates = languageModelCandidates; self.seed = seed; self.saveAs = saveAs
        self.workDoneToken = workDoneToken; self.partialResultToken = partialResultToken
    }
}

/// Progress of one optimiser step (soft/projected), one template added (bank) or one LM round
/// (the prompt-learning engine's `PromptLearningStep`).
public struct OptimisePromptStep: Codable, Sendable, Equatable {
    public var step: Int
    public var totalSteps: Int
    /// Training loss at the start of the step (nil for methods without a differentiable loss).
    public var loss: Float?
    public var trainAccuracy: Double?
    /// Set on the steps where validation was measured.
    public var validationAccuracy: Double?
    /// The current prompt as text (nearest tokens for soft prompts).
    public var prompt: String
    public var learningRate: Float?
    public init(step: Int, totalSteps: Int, loss: Float? = nil, trainAccuracy: Double? = nil, validationAccuracy: Double? = nil, prompt: String,
                learningRate: Float? = nil) {
        self.step = step; self.totalSteps = totalSteps; self.loss = loss; self.trainAccuracy = trainAccuracy
        self.validationAccuracy = validationAccuracy; self.prompt = prompt; self.learningRate = learningRate
    }
}

/// Accuracy on the validation features and, when given, the test features (the engine's `SplitAccuracy`).
public struct AccuracyPair: Codable, Sendable, Equatable {
    public var validation: Double
    public var test: Double?
    public init(validation: Double, test: Double? = nil) { self.validation = validation; self.test = test }
}

/// A token a learned context was read as: its id, its text, and how far the vector was from it
/// (the engine's `NearestToken`).
public struct NearestTokenInfo: Codable, Sendable, Equatable {
    public var id: Int32
    public var text: String
    /// Euclidean distance ‖v − e‖ between the context vector and the token embedding.
    public var distance: Float
    /// Cosine similarity between them.
    public var cosine: Float
    public init(id: Int32, text: String, distance: Float, cosine: Float) { self.id = id; self.text = text; self.distance = distance; self.cosine = cosine }
}

public struct OptimisePromptResult: Codable, Sendable {
    public var method: String
    /// The learned prompt as text ("{}" marks the class name).
    public var prompt: String
    public var templates: [String]
    public var zeroShot: AccuracyPair
    public var bankEnsemble: AccuracyPair
    public var learned: AccuracyPair
    public var trainAccuracy: Double
    /// Per context group (one shared, or one per class), per position: the nearest word token and its distance (soft and projected prompts).
    public var nearestTokens: [[NearestTokenInfo]]
    /// Mean per-token log-likelihood of the prompt under the language model, when one was used.
    public var fluency: Double?
    /// Method "names": accuracy with each learned name replaced by its nearest real words.
    public var nearestWordAccuracy: AccuracyPair?
    public var initialTrainingLoss: Float?
    public var finalTrainingLoss: Float?
    public var stepsRun: Int
    public var bestStep: Int
    public var stoppedEarly: Bool
    public var trainImages: Int
    public var validationImages: Int
    public var testImages: Int
    public var savedTo: String?
    /// Everything that determines the run (with the seed), to reproduce it.
    public var configuration: JSONValue
    public var seconds: Double
    public init(method: String, prompt: String, templates: [String], zeroShot: AccuracyPair, bankEnsemble: AccuracyPair,
                learned: AccuracyPair, trainAccuracy: Double, nearestTokens: [[NearestTokenInfo]], fluency: Double?,
                initialTrainingLoss: Float?, finalTrainingLoss: Float?, stepsRun: Int, bestStep: Int, stoppedEarly: Bool,
                trainImages: Int, validationImages: Int, testImages: Int, savedTo: String?, configuration: JSONValue, seconds: Double) {
        self.method = method; self.prompt = prompt; self.templates = templates; self.zeroShot = zeroShot
        self.bankEnsemble = bankEnsemble; self.learned = learned; self.trainAccuracy = trainAccuracy
        self.nearestTokens = nearestTokens; self.fluency = fluency; self.initialTrainingLoss = initialTrainingLoss
        self.finalTrainingLoss = finalTrainingLoss; self.stepsRun = stepsRun; self.bestStep = bestStep
        self.stoppedEarly = stoppedEarly; self.trainImages = trainImages; self.validationImages = validationImages
        self.testImages = testImages; self.savedTo = savedTo; self.configuration = configuration; self.seconds = seconds
    }
}

// MARK: Requests

public enum OptimisePromptRequest: StreamingRequestType {
    public static let method = "optimise-prompt"
    public typealias Params = OptimisePromptParams
    public typealias Result = OptimisePromptResult
    public typealias Partial = OptimisePromptStep
}
