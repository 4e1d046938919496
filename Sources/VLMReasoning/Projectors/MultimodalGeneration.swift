// Decoding after a multimodal prompt: the prompt's text and image chunks are prefilled chunk by chunk
// (as mtmd_helper_eval_chunks does), then the text `generate` loop continues from that cache, with the
// same sampling, streaming, stop strings and cancellation.
//
// Attribution: each sentence of the answer is read after everything before it (prompt, images and the
// answer's earlier sentences), with attention weights recorded in the last third of the layers; the
// weights from the sentence's tokens and every head to each image's tokens are averaged
// (`Transformer.meanAttention`), then laid on the image by each token's pixels (the projector's
// `tokenGeometry`, as visual reasoning lays them: tiles back at their pixel positions, a global view
// or class token spread by area) and normalised over all the images' cells together.
import Foundation
import VLMLanguage
import VLMTensor

/// A sentence of the answer and, per image, where its tokens looked.
public struct SentenceAttention: Sendable {
    public var text: String
    /// Per image in marker order; the maps of one sentence sum to 1 together.
    public var maps: [AttributionMap]
}

public enum MultimodalGeneration {
    /// Generates after `layout`. Returns the result (prompt timings counting every position) and, with
    /// `keepPromptCache`, the cache of the prompt alone, for attribution.
    public static func generate(_ model: LanguageModel, layout: MultimodalLayout, parameters: SamplingParameters, keepPromptCache: Bool = false,
                                compute: ComputeContext, onToken: (GeneratedToken) -> Void) throws -> (GenerationResult, KVCache?) {
        var cache = model.transformer.makeCache(capacity: model.contextLength)
        let start = Date()
        let logits = try model.prefill(segments: layout.segments, cache: &cache, compute: compute)
        let promptSeconds = Date().timeIntervalSince(start)
        // The prefill may have stopped part-way: there are no logits to sample from.
        try compute.checkCancellation()
        let prompt = keepPromptCache ? cache : nil
        var result = try model.continueGeneration(cache: &cache, lastLogits: logits, history: layout.textTokens, parameters: parameters,
                                              compute: compute, onToken: onToken)
        result.timings.promptTokens = layout.positionCount
        result.timings.promptSeconds = promptSeconds
        return (result, prompt)
    }

    /// One attention map set per sentence of `answer`, read after `prompt` (the cache of the prompt alone).
    /// `geometries`: per image in marker order, its tokens' pixels (`LocatedImageTokens.geometry`).
    public static func attribution(of answer: [Int32], after prompt: KVCache, model: LanguageModel, layout: MultimodalLayout,
                                   geometries: [ImageTokenGeometry], compute: ComputeContext) throws -> [SentenceAttention] {
        let layers = Set(ProjectorFrontEnd.defaultAttentionLayers(blockCount: model.hyperparameters.blockCount))
        let images = layout.imagePositions
        precondition(geometries.count == images.count, "one geometry per image")
        guard let first = images.flatMap({ $0 }).map(\.lowerBound).min(),
              let last = images.flatMap({ $0 }).map(\.upperBound).max() else { return [] }
        var cache = prompt
        var sentences: [SentenceAttention] = []
        for tokens in sentenceTokens(answer, tokenizer: model.tokenizer) {
            if compute.isCancelled { break }
            guard cache.count + tokens.count <= cache.capacity else { break }
            let span = try model.transformer.meanAttention(of: tokens, after: cache, layers: layers, to: first..<last)
            let maps = imageMaps(span, from: first, images: images, geometries: geometries)
            sentences.append(SentenceAttention(text: model.tokenizer.decode(tokens), maps: maps))
            _ = try model.transformer.forward(tokens, cache: &cache)
        }
        return sentences
    }

    /// Each image's share of `span` (the attention to context positions `first...`), laid on its geometry's
    /// grid; the maps together sum to 1, each image weighted by the attention its tokens got.
    static func imageMaps(_ span: [Float], from first: Int, images: [[Range<Int>]], geometries: [ImageTokenGeometry]) -> [AttributionMap] {
        let maps = zip(images, geometries).map { ranges, geometry in
            let mass = ranges.flatMap { range in range.map { Double(span[$0 - first]) } }
            var map = geometry.map(mass, normalization: "attention(mean over the sentence's tokens and heads, by token pixels)")
            let total = Float(mass.filter { $0.isFinite && $0 > 0 }.reduce(0, +))
            map.scores = map.scores.map { $0 * total }  // back to mass, so images compare
            return map
        }
        return jointlyNormalised(maps)
    }

    /// The answer cut after each token whose text ends a sentence (., !, ? or a line break); the rest is the last one.
    static func sentenceTokens(_ answer: [Int32], tokenizer: Tokenizer) -> [[Int32]] {
        var sentences: [[Int32]] = [], current: [Int32] = []
        for token in answer {
            current.append(token)
            let piece = tokenizer.decode([token]).trimmingCharacters(in: .whitespaces)
            if let end = piece.last, ".!?\n".contains(end) {
                sentences.append(current)
                current = []
            }
        }
        if !current.isEmpty { sentences.append(current) }
        return sentences
    }

    /// Grid masses rescaled to sum to 1 over all maps;
    /// uniform over every cell when there is no mass.
    static func jointlyNormalised(_ maps: [AttributionMap]) -> [AttributionMap] {
        let total = maps.reduce(0) { $0 + $1.scores.reduce(0, +) }
        let cells = maps.reduce(0) { $0 + $1.scores.count }
        return maps.map { map in
            var map = map
            map.scores = total > 0 && total.isFinite ? map.scores.map { $0 / total } : map.scores.map { _ in 1 / Float(cells) }
            return map
        }
    }
}
