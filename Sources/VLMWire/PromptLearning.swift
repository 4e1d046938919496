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
}

public struct OptimisePromptStep: Codable, Sendable {
    public var step: Int
    public var totalSteps: Int
    public var loss: Float?
    public var trainAccuracy: Double?
    public var validationAccuracy: Double?
    /// The current prompt as text (nearest tokens for soft prompts).
    public var prompt: String
    public var learningRate: Float?
    public init(step: Int, totalSteps: Int, loss: Float?, trainAccuracy: Double?, validationAccuracy: Double?, prompt: String, learningRate: Float?) {
        self.step = step; self.totalSteps = totalSteps; self.loss = loss; self.trainAccuracy = trainAccuracy
        self.validationAccuracy = validationAccuracy; self.prompt = prompt; self.learningRate = learningRate
    }
}

public struct AccuracyPair: Codable, Sendable {
    public var validation: Double
    public var test: Double?
    public init(validation: Double, test: Double?) { self.validation = validation; self.test = test }
}

public struct NearestTokenInfo: Codable, Sendable {
    public var id: Int32
    public var text: String
    public var distance: Float
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
