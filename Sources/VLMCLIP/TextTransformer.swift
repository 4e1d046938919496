import VLMTensor
import VLMVision

/// open_clip's text tower: token + positional embeddings, a causally masked transformer, ln_final,
/// the features at the end-of-text position (the largest token id in each row: argmax pooling),
/// and `text_projection`.
struct TextTransformer: Sendable {
    let tokenEmbedding: [Float]  // [vocab, width]
    let positionalEmbedding: [Float]  // [context, width]
    let transformer: TransformerEncoder<Linear>
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
        transformer = try checkpoint.transformer(prefix: "transformer.", width: width, heads: text.heads,
                                                 layers: text.layers, mlpRatio: text.mlpRatio, activation: config.activation)
        finalNorm = try checkpoint.layerNorm("ln_final.", width: width)
        projection = try checkpoint.projection("text_projection", in: width, out: config.embedDim)
    }

    /// Unnormalised embeddings [rows.count, embedDim] for token rows (each at most `contextLength`
    /// long; missing positions count as padding id 0, as in open_clip's zero-padded batches).
    ///
    /// Each row is computed only up to its pooled (end-of-text) position: with the causal mask,
    /// position i never sees positions after i, so the padding after the end-of-text token cannot
    /// change the pooled features. The rows are packed back to back as a ragged batch, so a batch
    /// costs the sum of the prompt lengths (typically ~10 tokens of the 77-token context).
    func encode(_ rows: [[Int32]], scratch: ScratchBuffer, compute: ComputeContext) throws -> [Float] {
        let lengths = rows.map { Self.argmax($0) + 1 }
        var x = [Float](repeating: 0, count: lengths.reduce(0, +) * width)
        var first = 0
        for (row, length) in zip(rows, lengths) {
            for position in 0..<length {
                let id = position < row.count ? Int(row[position]) : 0
                let destination = (first + position) * width
                for d in 0..<width {
                    x[destination + d] = tokenEmbedding[id * width + d] + positionalEmbedding[position * width + d]
                }
            }
            first += length
        }
        try transformer.apply(&x, sequenceLengths: lengths, causal: true, scratch: scratch, compute: compute)
        var pooled = [Float](repeating: 0, count: rows.count * width)
        first = 0
        for (b, length) in lengths.enumerated() {
            let source = (first + length - 1) * width  // the end-of-text position is each row's last
            for d in 0..<width { pooled[b * width + d] = x[source + d] }
            first += length
        }
        finalNorm(&pooled, rows: rows.count)  // per-row, so normalising only the pooled rows is exact
        return projection(pooled, rows: rows.count)
    }

    /// Index of the first maximum (torch.argmax's tie rule).
    static func argmax(_ row: [Int32]) -> Int {
        var best = 0
        for i in row.indices where row[i] > row[best] { best = i }
        return best
    }
}
