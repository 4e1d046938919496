// The tensors of a decoder, viewed in place in the mapped GGUF file, under llama.cpp's names
// (`TensorName`); which optional ones a block carries is the architecture's (`Architecture`).
import VLMTensor

struct LayerWeights: @unchecked Sendable {
    let attentionNorm: [Float]
    let query, key, value, attentionOutput: QuantizedMatrix
    /// Q, K, V biases (`Architecture.attentionBias`).
    let queryBias, keyBias, valueBias: [Float]?
    /// Per-head RMSNorm gains of Q and K, headDimension long (`Architecture.queryKeyNorm`).
    let queryNorm, keyNorm: [Float]?
    /// Norms of the attention and feed-forward outputs before their residual adds (`Architecture.postNorms`).
    let postAttentionNorm, postFeedForwardNorm: [Float]?
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
    /// `rope_freqs.weight`: divisors of the RoPE frequencies (Llama 3 scaling), ropeDimensionCount/2 long.
    let ropeFrequencyFactors: [Float]?

    init(gguf: GGUFFile, hyperparameters hp: Hyperparameters) throws {
        self.gguf = gguf
        let d = hp.embeddingLength, family = hp.family
        func matrix(_ name: String, rows: Int, columns: Int) throws -> QuantizedMatrix {
            let m = try gguf.matrix(name)
            guard m.rows == rows, m.columns == columns, (try gguf.tensor(name)).dimensions.count <= 2 else {
                throw LanguageModelError.tensorShape(name: name, expected: [columns, rows], actual: try gguf.tensor(name).dimensions)
            }
            return m
        }
        func vector(_ name: String, count: Int) throws -> [Float] {
            let v = try gguf.floats(name)
            guard v.count == count else { throw LanguageModelError.tensorShape(name: name, expected: [count], actual: [v.count]) }
            return v
        }
        tokenEmbedding = try matrix(TensorName.tokenEmbedding, rows: hp.vocabularySize, columns: d)
        layers = try (0..<hp.blockCount).map { i in
            func m(_ t: TensorName.Block, rows: Int, columns: Int) throws -> QuantizedMatrix {
                try matrix(t.name(layer: i), rows: rows, columns: columns)
            }
            func v(_ t: TensorName.Block, count: Int = d, if present: Bool = true) throws -> [Float]? {
                present ? try vector(t.name(layer: i), count: count) : nil
            }
            let hd = hp.headDimension, q = hp.queryDimension, kv = hp.keyValueDimension, ff = hp.feedForwardLength
            return LayerWeights(
                attentionNorm: try vector(TensorName.Block.attentionNorm.name(layer: i), count: d),
                query: try m(.query, rows: q, columns: d),
                key: try m(.key, rows: kv, columns: d),
                value: try m(.value, rows: kv, columns: d),
                attentionOutput: try m(.attentionOutput, rows: d, columns: q),
                queryBias: try v(.queryBias, count: q, if: family.attentionBias),
                keyBias: try v(.keyBias, count: kv, if: family.attentionBias),
                valueBias: try v(.valueBias, count: kv, if: family.attentionBias),
                queryNorm: try v(.queryNorm, count: hd, if: family.queryKeyNorm),
                keyNorm: try v(.keyNorm, count: hd, if: family.queryKeyNorm),
                postAttentionNorm: try v(.postAttentionNorm, if: family.postNorms),
                postFeedForwardNorm: try v(.postFeedForwardNorm, if: family.postNorms),
                feedForwardNorm: try vector(TensorName.Block.feedForwardNorm.name(layer: i), count: d),
                gate: try m(.gate, rows: ff, columns: d),
                up: try m(.up, rows: ff, columns: d),
                down: try m(.down, rows: d, columns: ff))
        }
        outputNorm = try vector(TensorName.outputNorm, count: d)
        output = gguf.tensors[TensorName.output] != nil
            ? try matrix(TensorName.output, rows: hp.vocabularySize, columns: d) : tokenEmbedding
        ropeFrequencyFactors = family.ropeFrequencyFactors && gguf.tensors[TensorName.ropeFrequencies] != nil
            ? try vector(TensorName.ropeFrequencies, count: hp.ropeDimensionCount / 2) : nil
    }

    /// Bytes of weights the model reads (mapped, so resident only once touched).
    var byteCount: Int { gguf.tensors.values.reduce(0) { $0 + $1.byteCount } }
}
