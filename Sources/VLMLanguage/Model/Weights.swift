// The tensors of a llama-style decoder, viewed in place in the mapped GGUF file.
import VLMTensor

struct LayerWeights: @unchecked Sendable {
    let attentionNorm: [Float]
    let query, key, value, attentionOutput: QuantizedMatrix
    let feedForwardNorm: [Float]
    let gate, up, down: QuantizedMatrix
}

/// `@unchecked Sendable`: immutable views into the read-only mapping that `gguf` keeps alive.
final class ModelWeights: @unchecked Sendable {
    let gguf: GGUFFile
    let tokenEmbedding: QuantizedMatrix
    let layers: [LayerWeights]
    let outputNorm: [Float]
    /// `output.weight`, or the token embedding when the file ties them.
    let output: QuantizedMatrix

    init(gguf: GGUFFile, hyperparameters hp: Hyperparameters) throws {
        self.gguf = gguf
        let d = hp.embeddingLength
        func matrix(_ name: String, rows: Int, columns: Int) throws -> QuantizedMatrix {
            let m = try gguf.matrix(name)
            guard m.rows == rows, m.columns == columns, (try gguf.tensor(name)).dimensions.count <= 2 else {
                throw LanguageModelError.tensorShape(name: name, expected: [columns, rows], actual: try gguf.tensor(name).dimensions)
            }
            return m
        }
        func vector(_ name: String) throws -> [Float] {
            let v = try gguf.floats(name)
            guard v.count == d else { throw LanguageModelError.tensorShape(name: name, expected: [d], actual: [v.count]) }
            return v
        }
        tokenEmbedding = try matrix("token_embd.weight", rows: hp.vocabularySize, columns: d)
        layers = try (0..<hp.blockCount).map { i in
            let p = "blk.\(i)."
            return LayerWeights(
                attentionNorm: try vector(p + "attn_norm.weight"),
                query: try matrix(p + "attn_q.weight", rows: hp.queryDimension, columns: d),
                key: try matrix(p + "attn_k.weight", rows: hp.keyValueDimension, columns: d),
                value: try matrix(p + "attn_v.weight", rows: hp.keyValueDimension, columns: d),
                attentionOutput: try matrix(p + "attn_output.weight", rows: d, columns: hp.queryDimension),
                feedForwardNorm: try vector(p + "ffn_norm.weight"),
                gate: try matrix(p + "ffn_gate.weight", rows: hp.feedForwardLength, columns: d),
                up: try matrix(p + "ffn_up.weight", rows: hp.feedForwardLength, columns: d),
                down: try matrix(p + "ffn_down.weight", rows: d, columns: hp.feedForwardLength))
        }
        outputNorm = try vector("output_norm.weight")
        output = gguf.tensors["output.weight"] != nil
            ? try matrix("output.weight", rows: hp.vocabularySize, columns: d) : tokenEmbedding
    }

    /// Bytes of weights the model reads (mapped, so resident only once touched).
    var byteCount: Int { gguf.tensors.values.reduce(0) { $0 + $1.byteCount } }
}
