/// Wire types for models/* and the CLIP methods (encode-image, classify, dataset/evaluate).
/// protocol/clip.md and protocol/daemon.md document them; vlmd.schema.json has their schemas.

public struct ModelsLoadParams: Codable, Sendable {
    /// One of the daemon's registered model families, listed in `initialize`'s `modelKinds` (today
    /// "clip": an open_clip directory, "gguf": a language model, "mmproj": a vision tower + projector).
    public var kind: String
    public var path: String
    /// The name later requests use; default: the directory or file name.
    public var id: String?
    /// Language models: KV-cache length in tokens (default: the model's, capped at 4096).
    public var contextLength: Int?
    /// Projectors that size images dynamically (qwen2vl_merger, qwen2.5vl_merger): the fewest and most
    /// image tokens an image may become (mtmd's image_min_tokens / image_max_tokens; default 8 and 4096).
    public var imageMinTokens: Int?
    public var imageMaxTokens: Int?
    /// Accepted as on every request (StreamingTokens), though models/load streams no partial results.
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(kind: String, path: String, id: String? = nil, contextLength: Int? = nil, imageMinTokens: Int? = nil,
                imageMaxTokens: Int? = nil, workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) {
        self.kind = kind; self.path = path; self.id = id; self.contextLength = contextLength; self.workDoneToken = workDoneToken
        self.imageMinTokens = imageMinTokens; self.imageMaxTokens = imageMaxTokens
        self.partialResultToken = partialResultToken
    }
}

public struct ModelsUnloadParams: Codable, Sendable {
    public var id: String

    public init(id: String) {
        self.id = id
    }
}

public struct ModelsUnloadResult: Codable, Sendable {
    public var id: String
    public var freedBytes: Int
    public init(id: String, freedBytes: Int) { self.id = id; self.freedBytes = freedBytes }
}

/// An image in a request: exactly one of a file path, base64 PNG bytes, or an `imageId` from an
/// earlier encode-image/classify reply (which skips decoding and encoding when still cached).
public struct ImageInput: Codable, Sendable {
    public var path: String?
    public var png: String?
    public var imageId: String?

    public init(path: String? = nil, png: String? = nil, imageId: String? = nil) {
        self.path = path; self.png = png; self.imageId = imageId
    }
}

public struct EncodeImageParams: Codable, Sendable {
    /// A loaded CLIP model's id; optional when exactly one CLIP model is loaded.
    public var model: String?
    public var images: [ImageInput]
    /// Also return the per-position (patch) features before pooling, through the final projection.
    public var dense: Bool?
    /// Images read, encoded and streamed per step (1...256, default 8).
    public var batchSize: Int?
    /// The image tower's arithmetic: "fp32" (default, exact) or "bf16" (bf16 weights and activations,
    /// fp32 sums; only where `initialize` lists it in `capabilities.experimental.imagePrecisions`).
    public var precision: String?
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(model: String? = nil, images: [ImageInput], dense: Bool? = nil, batchSize: Int? = nil, precision: String? = nil,
                workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) {
        self.model = model; self.images = images; self.dense = dense; self.batchSize = batchSize; self.precision = precision
        self.workDoneToken = workDoneToken; self.partialResultToken = partialResultToken
    }
}

public struct DenseFeatures: Codable, Sendable {
    public var gridHeight: Int
    public var gridWidth: Int
    /// [gridHeight * gridWidth][embedDim], row-major over the grid.
    public var features: [[Float]]
    public init(gridHeight: Int, gridWidth: Int, features: [[Float]]) {
        self.gridHeight = gridHeight; self.gridWidth = gridWidth; self.features = features
    }
}

public struct EncodedImage: Codable, Sendable {
    /// Position of the image in the request.
    public var index: Int
    public var imageId: String
    public var width: Int
    public var height: Int
    /// True when the embedding came from the cache.
    public var cached: Bool
    /// L2-normalised.
    public var embedding: [Float]
    public var dense: DenseFeatures?
    public init(index: Int, imageId: String, width: Int, height: Int, cached: Bool, embedding: [Float], dense: DenseFeatures? = nil) {
        self.index = index; self.imageId = imageId; self.width = width; self.height = height
        self.cached = cached; self.embedding = embedding; self.dense = dense
    }
}

public struct EncodeImageResult: Codable, Sendable {
    public var model: String
    public var images: [EncodedImage]
    public init(model: String, images: [EncodedImage]) { self.model = model; self.images = images }
}

/// Templates: a bank name ("cifar": CLIP's 18, "imagenet": CLIP's 80), one template containing
/// "{}", or a list of templates.
public enum TemplatesParam: Codable, Sendable {
    case single(String)
    case list([String])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) { self = .single(text) } else { self = .list(try container.decode([String].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .single(let text): try container.encode(text)
        case .list(let list): try container.encode(list)
        }
    }
}

public struct ClassifyParams: Codable, Sendable {
    public var model: String?
    public var images: [ImageInput]
    public var labels: [String]
    /// Default: "a photo of a {}."
    public var templates: TemplatesParam?
    /// How many of the best labels to list per image (default 5, at most the label count).
    public var topK: Int?
    /// Also return each template's own probabilities.
    public var perTemplate: Bool?
    /// A prompt saved by `optimise-prompt` (its `saveAs` name); replaces `templates`. `labels` may
    /// name new classes for a shared soft context.
    public var learnedPrompt: String?
    /// Images read, encoded and streamed per step (1...256, default 8).
    public var batchSize: Int?
    /// The image tower's arithmetic: "fp32" (default, exact) or "bf16" (bf16 weights and activations,
    /// fp32 sums; only where `initialize` lists it in `capabilities.experimental.imagePrecisions`).
    public var precision: String?
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(model: String? = nil, images: [ImageInput], labels: [String], templates: TemplatesParam? = nil, topK: Int? = nil,
                perTemplate: Bool? = nil, learnedPrompt: String? = nil, batchSize: Int? = nil, precision: String? = nil,
                workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) {
        self.model = model; self.images = images; self.labels = labels; self.templates = templates; self.topK = topK
        self.perTemplate = perTemplate; self.learnedPrompt = learnedPrompt; self.batchSize = batchSize; self.precision = precision
        self.workDoneToken = workDoneToken; self.partialResultToken = partialResultToken
    }
}

public struct LabelScore: Codable, Sendable {
    public var label: String
    public var index: Int
    public var prob: Float
    public init(label: String, index: Int, prob: Float) { self.label = label; self.index = index; self.prob = prob }
}

public struct TemplateScores: Codable, Sendable {
    public var template: String
    public var probs: [Float]
    public init(template: String, probs: [Float]) { self.template = template; self.probs = probs }
}

public struct ImageClassification: Codable, Sendable {
    public var index: Int
    public var imageId: String
    /// Softmax over labels of logitScale · cosine similarity, in label order.
    public var probs: [Float]
    public var top: [LabelScore]
    public var perTemplate: [TemplateScores]?
    public init(index: Int, imageId: String, probs: [Float], top: [LabelScore], perTemplate: [TemplateScores]? = nil) {
        self.index = index; self.imageId = imageId; self.probs = probs; self.top = top; self.perTemplate = perTemplate
    }
}

public struct ClassifyResult: Codable, Sendable {
    public var model: String
    public var labels: [String]
    public var templates: [String]
    public var results: [ImageClassification]
    public init(model: String, labels: [String], templates: [String], results: [ImageClassification]) {
        self.model = model; self.labels = labels; self.templates = templates; self.results = results
    }
}

public struct EvaluateParams: Codable, Sendable {
    public var model: String?
    /// A file in CIFAR's binary format, or a labelled image list (format "list").
    public var dataset: String
    /// "cifar10" (1 label byte), "cifar100" (fine label), "cifar100-coarse", "list". Default "cifar10".
    public var format: String?
    /// Class names in label order, or `labelsFile` (one name per line, e.g. batches.meta.txt).
    public var labels: [String]?
    public var labelsFile: String?
    public var templates: TemplatesParam?
    /// Evaluate only the first `limit` records.
    public var limit: Int?
    /// Images per forward pass (default 32).
    public var batchSize: Int?
    /// The image tower's arithmetic: "fp32" (default, exact) or "bf16" (bf16 weights and activations,
    /// fp32 sums; only where `initialize` lists it in `capabilities.experimental.imagePrecisions`).
    public var precision: String?
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(model: String? = nil, dataset: String, format: String? = nil, labels: [String]? = nil, labelsFile: String? = nil,
                templates: TemplatesParam? = nil, limit: Int? = nil, batchSize: Int? = nil, precision: String? = nil,
                workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) {
        self.model = model; self.dataset = dataset; self.format = format; self.labels = labels; self.labelsFile = labelsFile
        self.templates = templates; self.limit = limit; self.batchSize = batchSize; self.precision = precision; self.workDoneToken = workDoneToken
        self.partialResultToken = partialResultToken
    }
}

public struct EvaluatePartial: Codable, Sendable {
    public var processed: Int
    public var total: Int
    public var correct: Int
    public var accuracy: Double
    public init(processed: Int, total: Int, correct: Int, accuracy: Double) {
        self.processed = processed; self.total = total; self.correct = correct; self.accuracy = accuracy
    }
}

public struct EvaluateResult: Codable, Sendable {
    public var model: String
    public var dataset: String
    public var labels: [String]
    public var templates: Int
    public var count: Int
    public var accuracy: Double
    public var top5Accuracy: Double
    public var perClassAccuracy: [Double]
    /// confusion[true][predicted]
    public var confusion: [[Int]]
    public var seconds: Double
    public init(model: String, dataset: String, labels: [String], templates: Int, count: Int, accuracy: Double,
                top5Accuracy: Double, perClassAccuracy: [Double], confusion: [[Int]], seconds: Double) {
        self.model = model; self.dataset = dataset; self.labels = labels; self.templates = templates; self.count = count
        self.accuracy = accuracy; self.top5Accuracy = top5Accuracy; self.perClassAccuracy = perClassAccuracy
        self.confusion = confusion; self.seconds = seconds
    }
}

// MARK: Requests

public enum ModelsLoadRequest: RequestType {
    public static let method = "models/load"
    public typealias Params = ModelsLoadParams
    public typealias Result = ModelInfo
}

public enum ModelsUnloadRequest: RequestType {
    public static let method = "models/unload"
    public typealias Params = ModelsUnloadParams
    public typealias Result = ModelsUnloadResult
}

public enum ModelsListRequest: RequestType {
    public static let method = "models/list"
    public typealias Params = NoParams
    public typealias Result = [ModelInfo]
}

public enum EncodeImageRequest: StreamingRequestType {
    public static let method = "encode-image"
    public typealias Params = EncodeImageParams
    public typealias Result = EncodeImageResult
    public typealias Partial = EncodedImage
}

public enum ClassifyRequest: StreamingRequestType {
    public static let method = "classify"
    public typealias Params = ClassifyParams
    public typealias Result = ClassifyResult
    public typealias Partial = ImageClassification
}

public enum EvaluateDatasetRequest: StreamingRequestType {
    public static let method = "dataset/evaluate"
    public typealias Params = EvaluateParams
    public typealias Result = EvaluateResult
    public typealias Partial = EvaluatePartial
}
