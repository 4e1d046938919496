// Decoder inputs given as embeddings rather than token ids (e.g. a vision projector's image tokens),
// and prompts that mix the two, run the way llama.cpp's multimodal helper runs them.
import Foundation
import VLMTensor

/// One piece of a mixed prompt.
public enum PromptSegment: Sendable {
    case tokens([Int32])
    /// `count` rows of `embeddingLength` values, row-major, fed to the decoder in place of token embeddings.
    case embeddings([Float], count: Int)

    public var positionCount: Int {
        switch self {
        case let .tokens(t): t.count
        case let .embeddings(_, count): count
        }
    }
}

extension Transformer {
    /// Runs `count` input embeddings at positions `cache.count...`, appends their keys/values to `cache`
    /// and returns logits (and attention weights of `attentionLayers`), exactly as `forward(_:)` does
    /// after looking its tokens up.
    public func forward(embeddings: [Float], count: Int, cache: inout KVCache, logits rows: LogitRows = .last,
                        attentionLayers: Set<Int> = [], compute: ComputeContext = ComputeContext()) throws -> ForwardOutput {
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
                                   compute: compute)
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
        for case let .embeddings(values, count) in segments where values.count != count * d {
            throw LanguageModelError.invalidHyperparameters("\(values.count) embedding values for \(count) positions of width \(d)")
        }
        var logits: [Float] = []
        for segment in segments {
            switch segment {
            case let .tokens(tokens):
                if !tokens.isEmpty { logits = try prefill(tokens, cache: &cache, batchSize: batchSize, compute: compute) }
            case let .embeddings(values, count):
                var start = 0
                while start < count {
                    if compute.isCancelled { return logits }
                    let end = min(count, start + batchSize)
                    do {
                        logits = try transformer.forward(embeddings: Array(values[(start * d)..<(end * d)]), count: end - start,
                                                         cache: &cache, compute: compute).logits
                    } catch is ComputeCancelled { return logits }
                    start = end
                }
            }
        }
        return logits
    }
}
