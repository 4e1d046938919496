/// Wire types for the language-model methods: generate, tokenize, detokenize, score.
/// protocol/language.md documents them.

public struct ChatMessageParam: Codable, Sendable {
    public var role: String
    public var content: MessageContent

    public init(role: String, content: MessageContent) {
        self.role = role; self.content = content
    }

    public init(role: String, content: String) {
        self.init(role: role, content: .text(content))
    }
}

/// A message's content: text (where `<__media__>` marks an image of `images`), or content parts.
public enum MessageContent: Codable, Sendable {
    case text(String)
    case parts([ContentPart])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .text(text)
        } else {
            self = .parts(try container.decode([ContentPart].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case let .text(text): try container.encode(text)
        case let .parts(parts): try container.encode(parts)
        }
    }
}

/// One part of a message's content: `{type: "text", text}` or `{type: "image", image}`.
public struct ContentPart: Codable, Sendable {
    public var type: String
    public var text: String?
    public var image: ImageInput?

    public init(type: String, text: String? = nil, image: ImageInput? = nil) {
        self.type = type; self.text = text; self.image = image
    }

    public static func text(_ text: String) -> ContentPart { ContentPart(type: "text", text: text) }
    public static func image(_ image: ImageInput) -> ContentPart { ContentPart(type: "image", image: image) }
}

public struct GenerateParams: Codable, Sendable {
    /// A loaded GGUF model's id; optional when exactly one is loaded.
    public var model: String?
    /// Raw prompt text (BOS added as the model asks).
    public var prompt: String?
    /// Chat messages, rendered with the model's chat template. Give `prompt` or `messages`.
    public var messages: [ChatMessageParam]?
    /// Treat `prompt` as one user message in the chat template.
    public var chat: Bool?
    /// Parse control tokens written in the prompt text (e.g. "<|im_start|>").
    public var parseSpecial: Bool?
    public var maxTokens: Int?
    public var temperature: Float?
    public var topK: Int?
    public var topP: Float?
    public var minP: Float?
    public var repetitionPenalty: Float?
    public var seed: UInt64?
    public var stop: [String]?
    /// Return the log-probability of each generated token.
    public var logprobs: Bool?
    /// Images for the `<__media__>` markers of `prompt` or of messages' text, in order; with no marker
    /// anywhere, they follow the text of the last user message (as llama-mtmd-cli places them).
    public var images: [ImageInput]?
    /// A loaded mmproj model's id (the images' projector); optional when exactly one is loaded.
    public var mmproj: String?
    /// Also return, per sentence of the answer, its attention to the image tokens.
    public var attribution: Bool?
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(model: String? = nil, prompt: String? = nil, messages: [ChatMessageParam]? = nil, chat: Bool? = nil,
                parseSpecial: Bool? = nil, maxTokens: Int? = nil, temperature: Float? = nil, topK: Int? = nil, topP: Float? = nil,
                minP: Float? = nil, repetitionPenalty: Float? = nil, seed: UInt64? = nil, stop: [String]? = nil,
                logprobs: Bool? = nil, images: [ImageInput]? = nil, mmproj: String? = nil, attribution: Bool? = nil,
                workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) {
        self.model = model; self.prompt = prompt; self.messages = messages; self.chat = chat; self.parseSpecial = parseSpecial
        self.maxTokens = maxTokens; self.temperature = temperature; self.topK = topK; self.topP = topP; self.minP = minP
        self.repetitionPenalty = repetitionPenalty; self.seed = seed; self.stop = stop; self.logprobs = logprobs
        self.images = images; self.mmproj = mmproj; self.attribution = attribution
        self.workDoneToken = workDoneToken; self.partialResultToken = partialResultToken
    }

    /// Whether any image is given, beside the text or in content parts.
    public var hasImages: Bool {
        !(images ?? []).isEmpty || (messages ?? []).contains { message in
            if case let .parts(parts) = message.content { return parts.contains { $0.type == "image" } }
            return false
        }
    }
}

/// One streamed token.
public struct GeneratedTokenPartial: Codable, Sendable {
    public var index: Int
    public var id: Int32
    /// The text this token completes (may be empty while a multi-byte character is incomplete).
    public var text: String
    public var logprob: Double?
    public init(index: Int, id: Int32, text: String, logprob: Double? = nil) {
        self.index = index; self.id = id; self.text = text; self.logprob = logprob
    }
}

public struct GenerationTimingsResult: Codable, Sendable {
    public var promptSeconds: Double
    public var generationSeconds: Double
    public var promptTokensPerSecond: Double
    public var generatedTokensPerSecond: Double
    /// Seconds spent encoding images (with images only; 0 when every image came from the cache).
    public var imageEncodeSeconds: Double?
    public init(promptSeconds: Double, generationSeconds: Double, promptTokensPerSecond: Double, generatedTokensPerSecond: Double,
                imageEncodeSeconds: Double? = nil) {
        self.promptSeconds = promptSeconds; self.generationSeconds = generationSeconds
        self.promptTokensPerSecond = promptTokensPerSecond; self.generatedTokensPerSecond = generatedTokensPerSecond
        self.imageEncodeSeconds = imageEncodeSeconds
    }
}

/// How one image of a multimodal `generate` entered the context.
public struct ImageTokensInfo: Codable, Sendable {
    /// The image's place in marker order.
    public var index: Int
    public var imageId: String
    /// Image-token embeddings it contributed (all tiles).
    public var tokens: Int
    /// Context position of its first image token.
    public var position: Int
    /// Its tokens came from the image-embedding cache: nothing was encoded.
    public var cached: Bool
    public init(index: Int, imageId: String, tokens: Int, position: Int, cached: Bool) {
        self.index = index; self.imageId = imageId; self.tokens = tokens; self.position = position; self.cached = cached
    }
}

/// One sentence of the answer and where it looked: attention from its tokens to each image's tokens.
public struct SentenceAttribution: Codable, Sendable {
    public var sentence: Int
    public var text: String
    /// Per image, in marker order: the attention map on its grid (sums to 1 over all images' cells).
    public var maps: [ImageAttentionMap]
    public init(sentence: Int, text: String, maps: [ImageAttentionMap]) { self.sentence = sentence; self.text = text; self.maps = maps }
}

public struct ImageAttentionMap: Codable, Sendable {
    public var image: Int
    public var gridHeight: Int
    public var gridWidth: Int
    /// Row-major, gridHeight x gridWidth.
    public var scores: [Float]
    /// The cells' edges in the original image's pixels: column c spans x columnEdges[c]..<columnEdges[c+1]
    /// (gridWidth + 1 edges, 0 first, the image's width last), row r y rowEdges[r]..<rowEdges[r+1].
    public var columnEdges: [Double]
    public var rowEdges: [Double]
    public init(image: Int, gridHeight: Int, gridWidth: Int, scores: [Float], columnEdges: [Double], rowEdges: [Double]) {
        self.image = image; self.gridHeight = gridHeight; self.gridWidth = gridWidth; self.scores = scores
        self.columnEdges = columnEdges; self.rowEdges = rowEdges
    }
}

public struct GenerateResult: Codable, Sendable {
    public var model: String
    public var text: String
    public var tokenIds: [Int32]
    public var promptTokenIds: [Int32]
    /// "eos", "stop" (a stop string), "length" (maxTokens or the context is full).
    public var stopReason: String
    public var promptTokens: Int
    public var generatedTokens: Int
    public var logprobs: [Double]?
    public var timings: GenerationTimingsResult
    /// With images: how each entered the context (`promptTokenIds` holds the text tokens only;
    /// `promptTokens` counts every position, image tokens included).
    public var imageTokens: [ImageTokensInfo]?
    /// With `attribution`: one entry per sentence of the answer.
    public var attributions: [SentenceAttribution]?
    public init(model: String, text: String, tokenIds: [Int32], promptTokenIds: [Int32], stopReason: String,
                promptTokens: Int, generatedTokens: Int, logprobs: [Double]? = nil, timings: GenerationTimingsResult,
                imageTokens: [ImageTokensInfo]? = nil, attributions: [SentenceAttribution]? = nil) {
        self.model = model; self.text = text; self.tokenIds = tokenIds; self.promptTokenIds = promptTokenIds
        self.stopReason = stopReason; self.promptTokens = promptTokens; self.generatedTokens = generatedTokens
        self.logprobs = logprobs; self.timings = timings; self.imageTokens = imageTokens; self.attributions = attributions
    }
}

public struct TokenizeParams: Codable, Sendable {
    public var model: String?
    public var text: String
    /// Add BOS/EOS as the model declares (default true).
    public var addSpecial: Bool?
    public var parseSpecial: Bool?

    public init(model: String? = nil, text: String, addSpecial: Bool? = nil, parseSpecial: Bool? = nil) {
        self.model = model; self.text = text; self.addSpecial = addSpecial; self.parseSpecial = parseSpecial
    }
}

public struct TokenizeResult: Codable, Sendable {
    public var tokens: [Int32]
    /// Each token's text (byte-fallback pieces that are not valid UTF-8 alone are shown as <0xXX>).
    public var pieces: [String]
    public init(tokens: [Int32], pieces: [String]) { self.tokens = tokens; self.pieces = pieces }
}

public struct DetokenizeParams: Codable, Sendable {
    public var model: String?
    public var tokens: [Int32]
    public var renderSpecial: Bool?

    public init(model: String? = nil, tokens: [Int32], renderSpecial: Bool? = nil) {
        self.model = model; self.tokens = tokens; self.renderSpecial = renderSpecial
    }
}

public struct DetokenizeResult: Codable, Sendable {
    public var text: String
    public init(text: String) { self.text = text }
}

public struct ScoreParams: Codable, Sendable {
    public var model: String?
    /// The text every continuation follows (BOS added as the model asks).
    public var context: String
    public var continuations: [String]
    public var parseSpecial: Bool?

    public init(model: String? = nil, context: String, continuations: [String], parseSpecial: Bool? = nil) {
        self.model = model; self.context = context; self.continuations = continuations; self.parseSpecial = parseSpecial
    }
}

public struct ContinuationScore: Codable, Sendable {
    public var continuation: String
    /// Sum of the natural-log probabilities of the continuation's tokens given the context.
    public var logprob: Double
    public var tokens: Int
    public init(continuation: String, logprob: Double, tokens: Int) {
        self.continuation = continuation; self.logprob = logprob; self.tokens = tokens
    }
}

public struct ScoreResult: Codable, Sendable {
    public var model: String
    public var scores: [ContinuationScore]
    public init(model: String, scores: [ContinuationScore]) { self.model = model; self.scores = scores }
}

// MARK: Requests

public enum GenerateRequest: StreamingRequestType {
    public static let method = "generate"
    public typealias Params = GenerateParams
    public typealias Result = GenerateResult
    public typealias Partial = GeneratedTokenPartial
}

public enum TokenizeRequest: RequestType {
    public static let method = "tokenize"
    public typealias Params = TokenizeParams
    public typealias Result = TokenizeResult
}

public enum DetokenizeRequest: RequestType {
    public static let method = "detokenize"
    public typealias Params = DetokenizeParams
    public typealias Result = DetokenizeResult
}

public enum ScoreRequest: RequestType {
    public static let method = "score"
    public typealias Params = ScoreParams
    public typealias Result = ScoreResult
}
