/// Wire types for `encode-text` (protocol/clip.md) and `attribute` (protocol/attribute.md).

public struct EncodeTextParams: Codable, Sendable {
    /// A loaded CLIP model's id; optional when exactly one CLIP model is loaded.
    public var model: String?
    public var texts: [String]
    /// Absent: each text is embedded as it is. Given (a bank name, one template with "{}", or a list):
    /// each text fills every template and its embedding is the ensemble, as classify builds a class.
    public var templates: TemplatesParam?
    /// Texts embedded and streamed per step (1...256, default 8).
    public var batchSize: Int?
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(model: String? = nil, texts: [String], templates: TemplatesParam? = nil, batchSize: Int? = nil,
                workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) {
        self.model = model; self.texts = texts; self.templates = templates; self.batchSize = batchSize
        self.workDoneToken = workDoneToken; self.partialResultToken = partialResultToken
    }
}

public struct EncodedText: Codable, Sendable {
    /// Position of the text in the request.
    public var index: Int
    public var text: String
    /// L2-normalised.
    public var embedding: [Float]
    public init(index: Int, text: String, embedding: [Float]) { self.index = index; self.text = text; self.embedding = embedding }
}

public struct EncodeTextResult: Codable, Sendable {
    public var model: String
    /// The templates used, when the request gave some.
    public var templates: [String]?
    public var texts: [EncodedText]
    public init(model: String, templates: [String]?, texts: [EncodedText]) { self.model = model; self.templates = templates; self.texts = texts }
}

public struct AttributeParams: Codable, Sendable {
    /// A loaded CLIP model's id; optional when exactly one CLIP model is loaded.
    public var clip: String?
    /// A path or base64 PNG (the pixels are needed to map cells back to the image).
    public var image: ImageInput
    /// One map per text, as a reasoning step with that text gets.
    public var texts: [String]
    /// Selection, as in generate-with-visual-selection: "off" | "topk" | "box" (default "box"), `k`, `mass`.
    public var select: String?
    public var k: Int?
    public var mass: Float?
    /// Write heatmap PNGs into this (existing) directory, or send them inline, as visual reasoning does.
    public var heatmapDir: String?
    public var heatmapsInline: Bool?
    /// A saved selector's name (selector/train): the maps are the learned head's instead of the plain similarity.
    public var selector: String?
    /// The side, in pixels, the tower sees the image at (default: the selector's, else the model's
    /// image size); larger gives a finer grid (ModifiedResNet: a multiple of 32).
    public var resolution: Int?
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(clip: String? = nil, image: ImageInput, texts: [String], select: String? = nil, k: Int? = nil, mass: Float? = nil,
                heatmapDir: String? = nil, heatmapsInline: Bool? = nil, selector: String? = nil, resolution: Int? = nil,
                workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) {
        self.clip = clip; self.image = image; self.texts = texts; self.select = select; self.k = k; self.mass = mass
        self.selector = selector; self.resolution = resolution
        self.heatmapDir = heatmapDir; self.heatmapsInline = heatmapsInline; self.workDoneToken = workDoneToken
        self.partialResultToken = partialResultToken
    }
}

public struct AttributeResult: Codable, Sendable {
    public var clip: String
    public var imageId: String
    public var width: Int
    public var height: Int
    public var gridHeight: Int
    public var gridWidth: Int
    /// The part of the image the tower sees (its centre crop), in original pixels.
    public var visibleBox: BoxParam
    /// One per text, in order; `step` is the text's index.
    public var attributions: [AttributionInfo]
    public init(clip: String, imageId: String, width: Int, height: Int, gridHeight: Int, gridWidth: Int, visibleBox: BoxParam,
                attributions: [AttributionInfo]) {
        self.clip = clip; self.imageId = imageId; self.width = width; self.height = height
        self.gridHeight = gridHeight; self.gridWidth = gridWidth; self.visibleBox = visibleBox; self.attributions = attributions
    }
}

// MARK: Requests

public enum EncodeTextRequest: StreamingRequestType {
    public static let method = "encode-text"
    public typealias Params = EncodeTextParams
    public typealias Result = EncodeTextResult
    public typealias Partial = EncodedText
}

public enum AttributeRequest: StreamingRequestType {
    public static let method = "attribute"
    public typealias Params = AttributeParams
    public typealias Result = AttributeResult
    public typealias Partial = AttributionInfo
}
