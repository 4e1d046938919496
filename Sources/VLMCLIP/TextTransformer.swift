import VLMTensor

/// open_clip's text tower: token + positional embeddings, a causally masked transformer, ln_final,
/// the features at the end-of-text position (the largest token id in each row: argmax pooling),
/// and `text_projection`.
struct TextTransformer: Sendable {
    let tokenEmbedding: [Float]  // [vocab, width]
    let positionalEmbedding: [Float]  // [context, width]
    let transformer: Transformer
    let finalNorm: LayerNorm
    let projection: Linear
    let contextLength: Int
    let vocabSize: Int
    let width: Int

    init(_ checkpoint: CheckpointReader, config: CLIPConfig) throws {
        let text = config.text
        (contextLength, vocabSize, width) = (text.contextLength, text.vocabSize, text.width)
        tokenEmbedding = try checkpoint.tensor("token_embedding.weight", [vocabSize, width]).storage
        positionalEmbedding = try checkpoint.tensor("positional_embedding", [contextLength, width]).storage
        transformer = try Transformer(checkpoint, prefix: "transformer.", width: width, heads: text.heads,
                                      layers: text.layers, mlpRatio: text.mlpRatio, activation: config.activation)
        finalNorm = try checkpoint.layerNorm("ln_final.", width: width)
        projection = try checkpoint.projection("text_projection", in: width, out: config.embedDim)
    }

    /// Unnormalised embeddings [rows.count, embedDim] for token rows (each at most `contextLength`
    /// long; missing positions count as padding id 0, as in open_clip's zero-padded batches).
    ///
    /// Only positions up to the last pooled (end-of-text) position in the batch are computed: with
    /// the causal mask, position i never sees positions after i, so later (padding) positions cannot
    /// change the pooled features. Typical prompts are ~10 tokens of the 77-token context.
    func encode(_ rows: [[Int32]], scratch: ScratchBuffer, shouldCancel: () -> Bool) throws -> [Float] {
        let pooledPositions = rows.map(Self.argmax)
        let sequence = (pooledPositions.max() ?? 0) + 1
        let batch = rows.count
        var x = [Float](repeating: 0, count: batch * sequence * width)
        for (b, row) in rows.enumerated() {
            for position in 0..<sequence {
                let id = position < row.count ? Int(row[position]) : 0
                let destination = (b * sequence + position) * width
                for d in 0..<width {
                    x[destination + d] = tokenEmbedding[id * width + d] + positionalEmbedding[position * width + d]
                }
            }
        }
        try transformer.apply(&x, batch: batch, sequence: sequence, causal: true, scratch: scratch, shouldCancel: shouldCancel)
        var pooled = [Float](repeating: 0, count: batch * width)
        for b in 0..<batch {
            let source = (b * sequence + pooledPositions[b]) * width
            for d in 0..<width { pooled[b * width + d] = x[source + d] }
        }
        finalNorm(&pooled, rows: batch)  // per-row, so normalising only the pooled rows is exact
        return projection(pooled, rows: batch)
    }

    /// Index of the first maximum (torch.argmax's tie rule).
    static func argmax(_ row: [Int32]) -> Int {
        var best = 0
        for i in row.indices where row[i] > row[best] { best = i }
        return best
    }
}
