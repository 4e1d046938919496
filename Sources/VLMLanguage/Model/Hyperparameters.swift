// The shape of a decoder-only transformer as a GGUF file describes it under `<arch>.*` keys.
//
// Which family's options apply comes from `Architecture.registry` (Architecture.swift).
import Foundation
import VLMTensor

public struct Hyperparameters: Sendable, Equatable {
    /// `general.architecture`, and its entry in `Architecture.registry`.
    public var architecture: String
    public var family: Architecture
    public var embeddingLength: Int
    public var blockCount: Int
    public var feedForwardLength: Int
    public var headCount: Int
    public var headCountKV: Int
    public var headDimension: Int
    public var rmsEpsilon: Float
    /// RoPE base of the global-attention layers (every layer without a sliding window).
    public var ropeFrequencyBase: Float
    /// RoPE base of the sliding-window layers (`rope.freq_base_swa`).
    public var ropeFrequencyBaseLocal: Float
    public var ropeDimensionCount: Int
    /// Position scale of linear RoPE scaling (1 / `rope.scaling.factor`), 1 when unscaled.
    public var ropeFrequencyScale: Float
    public var trainedContextLength: Int
    public var vocabularySize: Int
    /// Keys each query of a sliding-window layer sees, itself included (`attention.sliding_window`); 0: no window.
    public var slidingWindow: Int
    /// Which layers attend through the sliding window (all false without one).
    public var slidingWindowLayers: [Bool]
    /// Multiplies Q·K before the softmax (on the queries when `family.scalesQueries`).
    public var attentionScale: Float
    /// Logits become c·tanh(logits/c) when set (`final_logit_softcapping`).
    public var finalLogitSoftcap: Float?
    /// M-RoPE: rotated pairs per position section (temporal, row, column, extra; `rope.dimension_sections`),
    /// empty for one-position RoPE.
    public var ropeSections: [Int] = []

    public var queryDimension: Int { headCount * headDimension }
    public var keyValueDimension: Int { headCountKV * headDimension }

    /// Whether layer `l` attends only through the sliding window.
    public func isSlidingWindowLayer(_ l: Int) -> Bool { slidingWindowLayers[l] }

    /// Reads `<arch>.*` keys. Throws naming the first missing or inconsistent key.
    public init(gguf: GGUFFile) throws {
        architecture = try gguf.string("general.architecture")
        family = try Architecture.named(architecture)
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
        let valueLength = (try? gguf.int("\(a).attention.value_length")) ?? headDimension
        guard headDimension > 0, valueLength == headDimension else {
            throw LanguageModelError.invalidHyperparameters("\(a): key length \(headDimension) and value length \(valueLength) must match")
        }
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
        ropeFrequencyBaseLocal = Float((try? gguf.double("\(a).rope.freq_base_swa")) ?? Double(family.localRopeFrequencyBase))
        slidingWindow = family.slidingWindowPattern == nil ? 0 : max(0, (try? gguf.int("\(a).attention.sliding_window")) ?? 0)
        let pattern = (try? gguf.int("\(a).attention.sliding_window_pattern")) ?? family.slidingWindowPattern ?? 0
        // llama.cpp's `set_swa_pattern`: in each run of `pattern` layers the last is global (pattern 0: none is).
        slidingWindowLayers = (0..<blockCount).map { [slidingWindow] l in
            slidingWindow > 0 && (pattern == 0 || l % pattern < pattern - 1)
        }
        // Gemma 3 27B scales by the model width per head, the others by the head size (llama.cpp, after gemma_pytorch).
        attentionScale = 1 / Float(architecture == "gemma3" && blockCount == 62 ? embeddingLength / headCount : headDimension).squareRoot()
        if family.sectionedRope {
            let key = "\(a).rope.dimension_sections"
            ropeSections = gguf.metadata[key]?.arrayValue?.compactMap(\.intValue) ?? []
            // The fourth (extra) section is 0 for text in llama.cpp; none of the qwen2vl files uses it, and
            // without it text tokens rotate exactly as with one-position RoPE.
            guard ropeSections.count == 4, ropeSections.allSatisfy({ $0 >= 0 }), ropeSections[3] == 0,
                  ropeSections.reduce(0, +) > 0, ropeSections.reduce(0, +) <= ropeDimensionCount / 2 else {
                throw LanguageModelError.invalidHyperparameters(
                    "\(key) must be 3 section sizes and 0, at most \(ropeDimensionCount / 2) pairs in all, got \(ropeSections)")
            }
        }
        let softcap = (try? gguf.double("\(a).final_logit_softcapping")) ?? 0
        finalLogitSoftcap = softcap != 0 ? Float(softcap) : nil
        let embedding = try gguf.tensor(TensorName.tokenEmbedding)
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
        case let .unsupportedArchitecture(a): "architecture '\(a)' is not supported (supported: \(Architecture.registry.keys.sorted().joined(separator: ", ")))"
        case let .invalidHyperparameters(s): "invalid hyperparameters: \(s)"
        case let .tensorShape(name, expected, actual): "tensor '\(name)' has shape \(actual), expected \(expected)"
        case let .tokenOutOfRange(t, n): "token id \(t) is outside the vocabulary (0..<\(n))"
        case let .contextFull(needed, capacity): "context full: \(needed) positions needed, \(capacity) available"
        case let .unsupportedTokenizer(s): "tokenizer '\(s)' is not supported (supported: llama, gpt2)"
        case let .invalidTokenizer(s): "invalid tokenizer metadata: \(s)"
        }
    }
}
