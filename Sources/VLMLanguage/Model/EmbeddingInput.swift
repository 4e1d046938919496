// Decoder inputs given as embeddings rather than token ids (e.g. a vision projector's image tokens),
// and prompts that mix the two, run the way llama.cpp's multimodal helper runs them.
import Foundation
import VLMTensor

/// How the positions of one batch attend to each other.
public enum BatchAttention: Sendable, Equatable {
    /// Each position sees itself and the positions before it.
    case causal
    /// Each position also sees the later positions of its batch, as llama.cpp decodes a batch with
    /// `llama_set_causal_attn(ctx, false)` (mtmd does so for gemma3's image tokens). Sliding windows
    /// still hide keys that lie a window or more behind the query.
    case bidirectional
}

/// How a run of input embeddings (an image's tokens) sits in the context.
public struct EmbeddingLayout: Sendable, Equatable {
    public var attention: BatchAttention
    /// The tokens as a grid, row-major. An M-RoPE model (qwen2vl) places token `row * columns + column`
    /// at (t, t + row, t + column), t the position after what precedes the image, and moves the position
    /// on by max(rows, columns) after it (mtmd's MTMD_POS_TYPE_MROPE); other models count one position a token.
    public var grid: Grid?

    public struct Grid: Sendable, Equatable {
        public var rows: Int
        public var columns: Int
        public init(rows: Int, columns: Int) {
            self.rows = rows
            self.columns = columns
        }
    }

    public init(attention: BatchAttention = .causal, grid: Grid? = nil) {
        self.attention = attention
        self.grid = grid
    }
}

/// One piece of a mixed prompt.
public enum PromptSegment: Sendable {
    case tokens([Int32])
    /// `count` rows of `embeddingLength` values, row-major, fed to the decoder in place of token embeddings,
    /// placed as `layout` says.
    case embeddings([Float], count: Int, layout: EmbeddingLayout = EmbeddingLayout())

    /// KV-cache slots the segment fills.
    public var positionCount: Int {
        switch self {
        case let .tokens(t): t.count
        case let .embeddings(_, count, _): count
        }
    }
}

/// Rotary positions of one batch of grid tokens on an M-RoPE model: tokens `first..<first+n` of an image
/// whose grid starts at position `origin`; the position counter moves `advance` after the batch.
struct GridPositions {
    var grid: EmbeddingLayout.Grid
    var origin: Int
    var first: Int
    var advance: Int

    /// (temporal, row, column, extra) positions of the batch's `i`-th token, as mtmd_image_tokens_get_decoder_pos.
    func sections(_ i: Int) -> [Int] {
        let index = first + i
        return [origin, origin + index / grid.columns, origin + index % grid.columns, 0]
    }
}

extension Transformer {
    /// Runs `count` input embeddings after the tokens in `cache`, appends their keys/values to `cache`
    /// and returns logits (and attention weights of `attentionLayers`), exactly as `forward(_:)` does
    /// after looking its tokens up. `layout` places them (its grid as one whole image).
    public func forward(embeddings: [Float], count: Int, cache: inout KVCache, logits rows: LogitRows = .last,
                        attentionLayers: Set<Int> = [], layout: EmbeddingLayout = EmbeddingLayout(),
                        compute: ComputeContext = ComputeContext()) throws -> ForwardOutput {
        let grid = gridPositions(layout, count: count, first: 0, total: count, origin: cache.nextPosition)
        return try forward(embeddings: embeddings, count: count, cache: &cache, logits: rows, attentionLayers: attentionLayers,
                           attention: layout.attention, grid: grid, compute: compute)
    }

    func forward(embeddings: [Float], count: Int, cache: inout KVCache, logits rows: LogitRows, attentionLayers: Set<Int>,
                 attention: BatchAttention, grid: GridPositions?, compute: ComputeContext) throws -> ForwardOutput {
        let d = hyperparameters.embeddingLength
        guard count > 0 else { return ForwardOutput(logits: [], attention: [:]) }
        guard embeddings.count == count * d else {
            throw LanguageModelError.invalidHyperparameters("\(embeddings.count) embedding values for \(count) positions of width \(d)")
        }
        guard embeddings.allSatisfy(\.isFinite) else { throw LanguageModelError.invalidHyperparameters("non-finite input embedding") }
        guard cache.count + count <= cache.capacity else {
            throw LanguageModelError.contextFull(needed: cache.count + count, capacity: cache.capacity)
        }
        return try forwardEmbedded(embeddings, count: count, cache: &cache, logits: rows, attentionLayers: attentionLayers,
                                   batchAttention: attention, grid: grid, compute: compute)
    }

    /// The M-RoPE positions of tokens `first..<first+count` of `total` laid out by `layout`, or nil when
    /// they count one position each (no grid, or a one-position RoPE model). The position counter stays at
    /// `origin` until the last batch moves it to origin + max(rows, columns).
    func gridPositions(_ layout: EmbeddingLayout, count: Int, first: Int, total: Int, origin: Int) -> GridPositions? {
        guard hyperparameters.family.sectionedRope, let grid = layout.grid, grid.rows * grid.columns == total else { return nil }
        let last = first + count == total
        return GridPositions(grid: grid, origin: origin, first: first, advance: last ? max(grid.rows, grid.columns) : 0)
    }
}

extension LanguageModel {
    /// Runs a mixed prompt and returns the logits after its last position.
    ///
    /// Each segment is its own series of batches of at most `batchSize` positions, as llama.cpp's
    /// `mtmd_helper_eval_chunks` decodes each text or image chunk separately: the same batch boundaries
    /// give the same arithmetic (a one-position batch sums attention in another order).
    public func prefill(segments: [PromptSegment], cache: inout KVCache, batchSize: Int = 512,
                        compute: ComputeContext = ComputeContext()) throws -> [Float] {
        let d = hyperparameters.embeddingLength
        let total = segments.reduce(0) { $0 + $1.positionCount }
        guard cache.count + total <= cache.capacity else { throw LanguageModelError.contextFull(needed: cache.count + total, capacity: cache.capacity) }
        for case let .embeddings(values, count, _) in segments where values.count != count * d {
            throw LanguageModelError.invalidHyperparameters("\(values.count) embedding values for \(count) positions of width \(d)")
        }
        var logits: [Float] = []
        for segment in segments {
            switch segment {
            case let .tokens(tokens):
                if !tokens.isEmpty { logits = try prefill(tokens, cache: &cache, batchSize: batchSize, compute: compute) }
            case let .embeddings(values, count, layout):
                var start = 0
                let origin = cache.nextPosition
                while start < count {
                    if compute.isCancelled { return logits }
                    let end = min(count, start + batchSize)
                    let grid = transformer.gridPositions(layout, count: end - start, first: start, total: count, origin: origin)
                    do {
                        logits = try transformer.forward(embeddings: Array(values[(start * d)..<(end * d)]), count: end - start,
                                                         cache: &cache, logits: .last, attentionLayers: [],
                                                         attention: layout.attention, grid: grid, compute: compute).logits
                    } catch is ComputeCancelled { return logits }
                    start = end
                }
            }
        }
        return logits
    }
}
