// The decoder families this runtime runs, each declared once (as llama.cpp's `llama-arch`): which
// optional tensors its blocks carry and which options of the one shared forward pass it switches on.
//
// The forward pass (Transformer.swift) is the llama block with these options; adding a family that
// shares it is adding an entry to `Architecture.registry`, not a copy of the forward pass.

/// How a family's decoder block differs from the llama block.
public struct Architecture: Sendable, Equatable {
    /// Which values RoPE rotates together: adjacent pairs (x[2i], x[2i+1]) ("normal", llama) or the two
    /// halves of a head (x[i], x[i+d/2]) ("neox": qwen2, qwen3, gemma3).
    public enum RopeLayout: Sendable { case adjacentPairs, halves }
    /// The gate's activation in the gated feed-forward: silu(gate)·up (SwiGLU) or gelu_tanh(gate)·up (GeGLU).
    public enum GatedActivation: Sendable { case silu, geluTanh }

    /// `general.architecture`.
    public let name: String
    public let rope: RopeLayout
    public let activation: GatedActivation
    /// Q, K and V projections add a bias (`attn_{q,k,v}.bias`; qwen2).
    public let attentionBias: Bool
    /// Each head of Q and K is RMS-normalised before RoPE (`attn_q_norm`, `attn_k_norm`; qwen3, gemma3).
    public let queryKeyNorm: Bool
    /// The attention output and the feed-forward output are RMS-normalised before their residual adds
    /// (`post_attention_norm`, `post_ffw_norm`; gemma3).
    public let postNorms: Bool
    /// Token embeddings are multiplied by √embedding_length (gemma).
    public let scalesEmbeddings: Bool
    /// The attention scale multiplies the queries before Q·K (gemma3) rather than the scores (llama).
    public let scalesQueries: Bool
    /// With `<arch>.attention.sliding_window` set, every n-th layer attends globally and the others
    /// through the window (gemma3: 6, overridable by `attention.sliding_window_pattern`).
    public let slidingWindowPattern: Int?
    /// RoPE base of the sliding-window layers when `rope.freq_base_swa` is absent (llama.cpp's default).
    public let localRopeFrequencyBase: Float
    /// A `rope_freqs.weight` tensor may divide each RoPE frequency (Llama 3's `llama3` scaling).
    public let ropeFrequencyFactors: Bool
    /// Multimodal RoPE (qwen2vl's M-RoPE): each rotated pair takes its angle from the temporal, row or
    /// column position, as `rope.dimension_sections` assigns the pairs; text has one position in all three.
    public var sectionedRope = false

    static let llama = Architecture(
        name: "llama", rope: .adjacentPairs, activation: .silu, attentionBias: false, queryKeyNorm: false,
        postNorms: false, scalesEmbeddings: false, scalesQueries: false, slidingWindowPattern: nil,
        localRopeFrequencyBase: 10000, ropeFrequencyFactors: true)
    static let qwen2 = Architecture(
        name: "qwen2", rope: .halves, activation: .silu, attentionBias: true, queryKeyNorm: false,
        postNorms: false, scalesEmbeddings: false, scalesQueries: false, slidingWindowPattern: nil,
        localRopeFrequencyBase: 10000, ropeFrequencyFactors: false)
    static let qwen2vl = Architecture(
        name: "qwen2vl", rope: .halves, activation: .silu, attentionBias: true, queryKeyNorm: false,
        postNorms: false, scalesEmbeddings: false, scalesQueries: false, slidingWindowPattern: nil,
        localRopeFrequencyBase: 10000, ropeFrequencyFactors: false, sectionedRope: true)
    static let qwen3 = Architecture(
        name: "qwen3", rope: .halves, activation: .silu, attentionBias: false, queryKeyNorm: true,
        postNorms: false, scalesEmbeddings: false, scalesQueries: false, slidingWindowPattern: nil,
        localRopeFrequencyBase: 10000, ropeFrequencyFactors: false)
    static let gemma3 = Architecture(
        name: "gemma3", rope: .halves, activation: .geluTanh, attentionBias: false, queryKeyNorm: true,
        postNorms: true, scalesEmbeddings: true, scalesQueries: true, slidingWindowPattern: 6,
        localRopeFrequencyBase: 10000, ropeFrequencyFactors: false)

    /// Every architecture this runtime runs, by `general.architecture`.
    public static let registry: [String: Architecture] =
        Dictionary(uniqueKeysWithValues: [llama, qwen2, qwen2vl, qwen3, gemma3].map { ($0.name, $0) })

    /// The entry for `name`, or an error naming it and the supported ones.
    public static func named(_ name: String) throws -> Architecture {
        guard let a = registry[name] else { throw LanguageModelError.unsupportedArchitecture(name) }
        return a
    }
}

/// Tensor names as llama.cpp's GGUF converter writes them (`LLM_TENSOR_NAMES`).
enum TensorName {
    static let tokenEmbedding = "token_embd.weight"
    static let outputNorm = "output_norm.weight"
    static let output = "output.weight"
    static let ropeFrequencies = "rope_freqs.weight"

    /// Block tensors, `blk.<layer>.<name>`.
    enum Block: String {
        case attentionNorm = "attn_norm.weight"
        case query = "attn_q.weight", key = "attn_k.weight", value = "attn_v.weight"
        case queryBias = "attn_q.bias", keyBias = "attn_k.bias", valueBias = "attn_v.bias"
        case queryNorm = "attn_q_norm.weight", keyNorm = "attn_k_norm.weight"
        case attentionOutput = "attn_output.weight"
        case postAttentionNorm = "post_attention_norm.weight"
        case feedForwardNorm = "ffn_norm.weight"
        case gate = "ffn_gate.weight", up = "ffn_up.weight", down = "ffn_down.weight"
        case postFeedForwardNorm = "post_ffw_norm.weight"

        func name(layer: Int) -> String { "blk.\(layer).\(rawValue)" }
    }
}
