// The shape of a decoder-only transformer as a GGUF file describes it under `<arch>.*` keys.
//
// New architectures that share the llama block (Qwen2, Gemma, ...) are added by describing how their
// keys and options differ here (`ArchitectureTraits`), not by copying the forward pass.
import VLMTensor

/// Per-architecture switches of the shared decoder block.
public struct ArchitectureTraits: Sendable, Equatable {
    /// RoPE rotates adjacent pairs (x[2i], x[2i+1]) ("normal", llama) or halves (x[i], x[i+d/2]) ("neox", qwen2).
    public var ropeRotatesAdjacentPairs: Bool
    /// Q/K/V projections carry biases (qwen2).
    public var attentionHasBias: Bool

    public static let llama = ArchitectureTraits(ropeRotatesAdjacentPairs: true, attentionHasBias: false)

    /// The traits of a `general.architecture` name this runtime can run.
    public static func forArchitecture(_ name: String) -> ArchitectureTraits? {
        switch name {
        case "llama": .llama
        default: nil
        }
    }
}

public struct Hyperparameters: Sendable, Equatable {
    public var architecture: String
    public var traits: ArchitectureTraits
    public var embeddingLength: Int
    public var blockCount: Int
    public var feedForwardLength: Int
    public var headCount: Int
    public var headCountKV: Int
    public var headDimension: Int
    public var rmsEpsilon: Float
    public var ropeFrequencyBase: Float
    public var ropeDimensionCount: Int
    /// Position scale of linear RoPE scaling (1 / `rope.scaling.factor`), 1 when unscaled.
    public var ropeFrequencyScale: Float
    public var trainedContextLength: Int
    public var vocabularySize: Int

    public var queryDimension: Int { headCount * headDimension }
    public var keyValueDimension: Int { headCountKV * headDimension }

    /// Reads `<arch>.*` keys. Throws naming the first missing or inconsistent key.
    public init(gguf: GGUFFile) throws {
        architecture = try gguf.string("general.architecture")
        guard let traits = ArchitectureTraits.forArchitecture(architecture) else {
            throw LanguageModelError.unsupportedArchitecture(architecture)
        }
        self.traits = traits
        let a = architecture
        embeddingLength = try gguf.int("\(a).embedding_length")
        blockCount = try gguf.int("\(a).block_count")
        feedForwardLength = try gguf.int("\(a).feed_forward_length")
        headCount = try gguf.int("\(a).attention.head_count")
        headCountKV = (try? gguf.int("\(a).attention.head_count_kv")) ?? headCount
        rmsEpsilon = Float(try gguf.double("\(a).attention.layer_norm_rms_epsilon"))
        ropeFrequencyBase = Float((try? gguf.double("\(a).rope.freq_base")) ?? 10000)
        trainedContextLength = try gguf.int("\(a).context_length")
        guard embeddingLength > 0, headCount > 0, headCountKV > 0, embeddingLength % headCount == 0,
              headCount % headCountKV == 0, blockCount > 0, feedForwardLength > 0, trainedContextLength > 0 else {
            throw LanguageModelError.invalidHyperparameters("\(a): embedding \(embeddingLength), heads \(headCount)/\(headCountKV), blocks \(blockCount)")
        }
        headDimension = (try? gguf.int("\(a).attention.key_length")) ?? embeddingLength / headCount
        ropeDimensionCount = (try? gguf.int("\(a).rope.dimension_count")) ?? headDimension
        guard ropeDimensionCount % 2 == 0, ropeDimensionCount <= headDimension else {
            throw LanguageModelError.invalidHyperparameters("\(a).rope.dimension_count \(ropeDimensionCount) vs head size \(headDimension)")
        }
        let scalingType = (try? gguf.string("\(a).rope.scaling.type")) ?? "none"
        let factor = (try? gguf.double("\(a).rope.scaling.factor")) ?? 0
        switch scalingType {
        case "none": ropeFrequencyScale = 1
        case "linear": ropeFrequencyScale = factor > 0 ? Float(1 / factor) : 1
        default: throw LanguageModelError.invalidHyperparameters("\(a).rope.scaling.type '\(scalingType)' is not supported")
        }
        let embedding = try gguf.tensor("token_embd.weight")
        vocabularySize = embedding.rowCount
        guard embedding.rowLength == embeddingLength else {
            throw LanguageModelError.invalidHyperparameters("token_embd.weight rows are \(embedding.rowLength) long, expected \(embeddingLength)")
        }
    }
}

public enum LanguageModelError: Error, CustomStringConvertible, Equatable {
    case unsupportedArchitecture(String)
    case invalidHyperparameters(String)
    case tensorShape(name: String, expected: [Int], actual: [Int])
    case tokenOutOfRange(Int32, vocabularySize: Int)
    case contextFull(needed: Int, capacity: Int)
    case unsupportedTokenizer(String)
    case invalidTokenizer(String)

    public var description: String {
        switch self {
        case let .unsupportedArchitecture(a): "architecture '\(a)' is not supported (supported: llama)"
        case let .invalidHyperparameters(s): "invalid hyperparameters: \(s)"
        case let .tensorShape(name, expected, actual): "tensor '\(name)' has shape \(actual), expected \(expected)"
        case let .tokenOutOfRange(t, n): "token id \(t) is outside the vocabulary (0..<\(n))"
        case let .contextFull(needed, capacity): "context full: \(needed) positions needed, \(capacity) available"
        case let .unsupportedTokenizer(s): "tokenizer '\(s)' is not supported (supported: llama, gpt2)"
        case let .invalidTokenizer(s): "invalid tokenizer metadata: \(s)"
        }
    }
}
