// selector/train and selector/evaluate: a learned selection head over a CLIP model's dense features
// (protocol/selector.md).

public struct SelectorTrainParams: Codable, Sendable {
    /// A loaded CLIP model's id; optional when exactly one CLIP model is loaded.
    public var clip: String?
    /// A JSON-lines file of examples `{"image", "text", "box": [x, y, width, height]}` (box in the
    /// image's pixels) or `{"image", "text", "map": [...]}` (one non-negative value per grid cell,
    /// row-major); image paths relative to the file.
    public var examples: String
    /// Held-out examples in the same format; without it, `validationFraction` of the images are held out.
    public var validation: String?
    public var validationFraction: Float?
    /// Save the trained head under this plain name (the prompts directory, like learned prompts).
    public var saveAs: String?
    public var steps: Int?
    public var learningRate: Float?
    /// Examples per step; 0 for all.
    public var batchSize: Int?
    public var validateEvery: Int?
    public var seed: UInt64?
    /// 0 (default): score the model's dense cells; G: score the pooled embeddings of a G×G grid of crops.
    public var cropGrid: Int?
    /// The side, in pixels, the image tower sees each image at for the dense cells (default: the
    /// model's image size); larger gives a finer grid (ModifiedResNet: a multiple of 32).
    public var resolution: Int?
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(clip: String? = nil, examples: String, validation: String? = nil, validationFraction: Float? = nil,
                saveAs: String? = nil, steps: Int? = nil, learningRate: Float? = nil, batchSize: Int? = nil,
                validateEvery: Int? = nil, seed: UInt64? = nil, cropGrid: Int? = nil, resolution: Int? = nil,
                workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) {
        self.clip = clip; self.examples = examples; self.validation = validation; self.validationFraction = validationFraction
        self.saveAs = saveAs; self.steps = steps; self.learningRate = learningRate; self.batchSize = batchSize
        self.validateEvery = validateEvery; self.seed = seed; self.cropGrid = cropGrid; self.resolution = resolution
        self.workDoneToken = workDoneToken
        self.partialResultToken = partialResultToken
    }
}

/// One training step (validation figures on the steps that validate).
public struct SelectorTrainStep: Codable, Sendable {
    public var step: Int
    public var totalSteps: Int
    /// Mean cross-entropy of the head's maps against the targets, on the step's batch.
    public var loss: Double
    public var validationLoss: Double?
    /// Fraction of held-out examples whose highest cell is one their target weighs most.
    public var validationTopCell: Double?
    /// 1 / exp(λ): the softmax temperature of the head's map.
    public var temperature: Float
    public init(step: Int, totalSteps: Int, loss: Double, validationLoss: Double?, validationTopCell: Double?, temperature: Float) {
        self.step = step; self.totalSteps = totalSteps; self.loss = loss; self.validationLoss = validationLoss
        self.validationTopCell = validationTopCell; self.temperature = temperature
    }
}

public struct SelectorTrainResult: Codable, Sendable {
    public var clip: String
    public var trainExamples: Int
    public var validationExamples: Int
    public var images: Int
    public var stepsRun: Int
    public var bestStep: Int
    /// Validation loss of the untrained head (the plain similarity map) and of the kept state.
    public var initialValidationLoss: Double
    public var bestValidationLoss: Double
    public var temperature: Float
    public var cancelled: Bool
    public var savedTo: String?
    public var seconds: Double
    public init(clip: String, trainExamples: Int, validationExamples: Int, images: Int, stepsRun: Int, bestStep: Int,
                initialValidationLoss: Double, bestValidationLoss: Double, temperature: Float, cancelled: Bool,
                savedTo: String?, seconds: Double) {
        self.clip = clip; self.trainExamples = trainExamples; self.validationExamples = validationExamples; self.images = images
        self.stepsRun = stepsRun; self.bestStep = bestStep; self.initialValidationLoss = initialValidationLoss
        self.bestValidationLoss = bestValidationLoss; self.temperature = temperature; self.cancelled = cancelled
        self.savedTo = savedTo; self.seconds = seconds
    }
}

public struct SelectorEvaluateParams: Codable, Sendable {
    public var clip: String?
    /// Labelled examples with boxes, in selector/train's format.
    public var examples: String
    /// A saved selector's name; without it only the plain similarity map is evaluated.
    public var selector: String?
    /// The mass the predicted box must hold (the smallest box of cells reaching it), for the IoU; default 0.5.
    public var mass: Float?
    /// The side the tower sees each image at for the plain similarity map (default: the selector's,
    /// else the model's image size). The selector always uses the resolution it was trained at.
    public var resolution: Int?
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?
    public init(clip: String? = nil, examples: String, selector: String? = nil, mass: Float? = nil, resolution: Int? = nil,
                workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) {
        self.clip = clip; self.examples = examples; self.selector = selector; self.mass = mass; self.resolution = resolution
        self.workDoneToken = workDoneToken; self.partialResultToken = partialResultToken
    }
}

/// How often a map's highest cell lies in the query's box, and the mean IoU of its selected box with it.
public struct SelectionFigures: Codable, Sendable {
    public var pointing: Double
    public var meanIoU: Double
    public init(pointing: Double, meanIoU: Double) { self.pointing = pointing; self.meanIoU = meanIoU }
}

/// The figures so far (streamed after each batch of images) and at the end.
public struct SelectorEvaluation: Codable, Sendable {
    public var clip: String
    public var selector: String?
    public var queries: Int
    public var images: Int
    public var similarity: SelectionFigures
    public var learned: SelectionFigures?
    /// The side the tower saw the images at for each map (0 for a crop selector, whose cells are crops).
    public var resolution: Int
    public var learnedResolution: Int?
    public var seconds: Double
    public init(clip: String, selector: String?, queries: Int, images: Int, similarity: SelectionFigures,
                learned: SelectionFigures?, resolution: Int, learnedResolution: Int?, seconds: Double) {
        self.clip = clip; self.selector = selector; self.queries = queries; self.images = images
        self.similarity = similarity; self.learned = learned; self.resolution = resolution; self.learnedResolution = learnedResolution
        self.seconds = seconds
    }
}

// MARK: Requests

public enum SelectorTrainRequest: StreamingRequestType {
    public static let method = "selector/train"
    public typealias Params = SelectorTrainParams
    public typealias Result = SelectorTrainResult
    public typealias Partial = SelectorTrainStep
}

public enum SelectorEvaluateRequest: StreamingRequestType {
    public static let method = "selector/evaluate"
    public typealias Params = SelectorEvaluateParams
    public typealias Result = SelectorEvaluation
    public typealias Partial = SelectorEvaluation
}

/// selector/distil: reasoning runs over {image, question} lines, their steps' maps averaged into one
/// target per question, and a head trained to predict it from the question alone.
public struct SelectorDistilParams: Codable, Sendable {
    public var clip: String?
    /// The GGUF language model that reasons; optional when exactly one is loaded.
    public var lm: String?
    /// A JSON-lines file of {"image", "question"}; image paths relative to the file.
    public var examples: String
    public var saveAs: String?
    public var steps: Int?
    public var learningRate: Float?
    public var batchSize: Int?
    public var validateEvery: Int?
    public var validationFraction: Float?
    /// Seeds the reasoning runs' sampling, the hold-out draw and the batches.
    public var seed: UInt64?
    /// Reasoning settings, as in generate-with-visual-selection.
    public var labels: [String]?
    public var regionGrid: [Int]?
    public var maxTokensPerStage: Int?
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(clip: String? = nil, lm: String? = nil, examples: String, saveAs: String? = nil, steps: Int? = nil,
                learningRate: Float? = nil, batchSize: Int? = nil, validateEvery: Int? = nil, validationFraction: Float? = nil,
                seed: UInt64? = nil, labels: [String]? = nil, regionGrid: [Int]? = nil, maxTokensPerStage: Int? = nil,
                workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) {
        self.clip = clip; self.lm = lm; self.examples = examples; self.saveAs = saveAs; self.steps = steps
        self.learningRate = learningRate; self.batchSize = batchSize; self.validateEvery = validateEvery
        self.validationFraction = validationFraction; self.seed = seed; self.labels = labels; self.regionGrid = regionGrid
        self.maxTokensPerStage = maxTokensPerStage; self.workDoneToken = workDoneToken; self.partialResultToken = partialResultToken
    }

    /// The training half, as selector/train takes it.
    public var training: SelectorTrainParams {
        SelectorTrainParams(clip: clip, examples: examples, validationFraction: validationFraction, saveAs: saveAs, steps: steps,
                            learningRate: learningRate, batchSize: batchSize, validateEvery: validateEvery, seed: seed)
    }
}

public struct SelectorDistilResult: Codable, Sendable {
    /// Questions reasoned about, and how many runs produced at least one attribution map.
    public var questions: Int
    public var recorded: Int
    public var training: SelectorTrainResult
    public init(questions: Int, recorded: Int, training: SelectorTrainResult) {
        self.questions = questions; self.recorded = recorded; self.training = training
    }
}

public enum SelectorDistilRequest: StreamingRequestType {
    public static let method = "selector/distil"
    public typealias Params = SelectorDistilParams
    public typealias Result = SelectorDistilResult
    public typealias Partial = SelectorTrainStep
}
