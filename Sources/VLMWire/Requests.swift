/// The requests vlmd answers, one type each: the method name and the types of its params, result and
/// (when it streams) partial results. The daemon registers its handlers by these types and clients
/// (`vlm`, the Swift tests) build their requests from them, so both ends share one definition;
/// protocol/vlmd.schema.json describes the same shapes and a test keeps it in step with them.
public protocol RequestType: Sendable {
    associatedtype Params: Codable & Sendable
    associatedtype Result: Codable & Sendable
    static var method: String { get }
}

/// A request that streams partial results (`$/progress` on its `partialResultToken`) before its result.
public protocol StreamingRequestType: RequestType {
    associatedtype Partial: Codable & Sendable
}

/// The params of a method that takes none: absent, null and `{}` are all accepted; sent as `{}`.
public struct NoParams: Codable, Sendable {
    public init() {}
    public init(from decoder: any Decoder) throws {}
    public func encode(to encoder: any Encoder) throws {
        _ = encoder.container(keyedBy: NoKeys.self)
    }
    private enum NoKeys: CodingKey {}
}

/// The result of a method that answers `null`.
public struct NullResult: Codable, Sendable {
    public init() {}
    public init(from decoder: any Decoder) throws {
        guard try decoder.singleValueContainer().decodeNil() else {
            throw DecodingError.typeMismatch(NullResult.self, .init(codingPath: decoder.codingPath, debugDescription: "expected null"))
        }
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encodeNil()
    }
}

// MARK: Lifecycle (answered by the daemon itself, in order, not through the handler table)

public enum InitializeRequest: RequestType {
    public static let method = "initialize"
    public typealias Params = InitializeParams
    public typealias Result = InitializeResult
}

public enum ShutdownRequest: RequestType {
    public static let method = "shutdown"
    public typealias Params = NoParams
    public typealias Result = NullResult
}

// MARK: Daemon

/// Answers at once, or after `delayMs` (cancellable), echoing `echo`.
public enum PingRequest: RequestType {
    public static let method = "ping"
    public typealias Params = PingParams
    public typealias Result = PingResult
}

public enum StatusRequest: RequestType {
    public static let method = "daemon/status"
    public typealias Params = NoParams
    public typealias Result = StatusResult
}

/// Ends the whole daemon (all connections), e.g. one started by `vlm daemon start`.
public enum StopRequest: RequestType {
    public static let method = "daemon/stop"
    public typealias Params = NoParams
    public typealias Result = NullResult
}

public enum DebugStreamRequest: StreamingRequestType {
    public static let method = "debug/stream"
    public typealias Params = DebugStreamParams
    public typealias Result = DebugStreamResult
    public typealias Partial = DebugStreamPartial
}

// MARK: Models

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

// MARK: CLIP

public enum EncodeImageRequest: StreamingRequestType {
    public static let method = "encode-image"
    public typealias Params = EncodeImageParams
    public typealias Result = EncodeImageResult
    public typealias Partial = EncodedImage
}

public enum EncodeTextRequest: StreamingRequestType {
    public static let method = "encode-text"
    public typealias Params = EncodeTextParams
    public typealias Result = EncodeTextResult
    public typealias Partial = EncodedText
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

public enum AttributeRequest: StreamingRequestType {
    public static let method = "attribute"
    public typealias Params = AttributeParams
    public typealias Result = AttributeResult
    public typealias Partial = AttributionInfo
}

// MARK: Prompt learning and visual reasoning

public enum OptimisePromptRequest: StreamingRequestType {
    public static let method = "optimise-prompt"
    public typealias Params = OptimisePromptParams
    public typealias Result = OptimisePromptResult
    public typealias Partial = OptimisePromptStep
}

public enum VisualReasoningRequest: StreamingRequestType {
    public static let method = "generate-with-visual-selection"
    public typealias Params = VisualReasoningParams
    public typealias Result = VisualReasoningResult
    public typealias Partial = VisualReasoningEvent
}

// MARK: Language models

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
