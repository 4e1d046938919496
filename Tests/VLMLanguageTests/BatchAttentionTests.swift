// Causal and bidirectional batches of input embeddings (llama_set_causal_attn) on stories260K.
import Testing
import VLMLanguage

@Suite struct BatchAttentionTests {
    let model = LoadedModels.stories

    /// Three input embeddings, the last of them `last` times a fixed row.
    func rows(last: Float) -> [Float] {
        let d = model.hyperparameters.embeddingLength
        return (0..<(3 * d)).map { i in
            let x = Float((i * 37) % 23) / 23 - 0.5
            return i >= 2 * d ? x * last : x
        }
    }

    /// The first position's logits after a 3-position batch whose last embedding is scaled by `last`.
    func firstLogits(last: Float, attention: BatchAttention) throws -> [Float] {
        var cache = model.transformer.makeCache(capacity: 8)
        _ = try model.transformer.forward([1], cache: &cache)
        let out = try model.transformer.forward(embeddings: rows(last: last), count: 3, cache: &cache, logits: .all, layout: EmbeddingLayout(attention: attention))
        return Array(out.logits.prefix(model.hyperparameters.vocabularySize))
    }

    @Test func causalPositionsIgnoreLaterOnes() throws {
        #expect(try firstLogits(last: 1, attention: .causal) == firstLogits(last: -3, attention: .causal))
    }

    @Test func bidirectionalPositionsSeeTheWholeBatch() throws {
        #expect(try firstLogits(last: 1, attention: .bidirectional) != firstLogits(last: -3, attention: .bidirectional))
    }

    /// Attention weights of a bidirectional batch cover its later positions and still sum to 1.
    @Test func recordedWeightsReachLaterPositions() throws {
        var cache = model.transformer.makeCache(capacity: 8)
        let out = try model.transformer.forward(embeddings: rows(last: 1), count: 3, cache: &cache, logits: .last,
                                                attentionLayers: [0], layout: EmbeddingLayout(attention: .bidirectional))
        let weights = try #require(out.attention[0])
        let first = Array(weights.prefix(3))  // query 0, head 0, keys 0..<3
        #expect(first[2] > 0)
        #expect(abs(first.reduce(0, +) - 1) < 1e-2)
    }
}
