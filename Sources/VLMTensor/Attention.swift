/// softmax(Q Kᵀ / √d + mask) V for every head of one sequence.
///
/// Q, K and V are rows of `heads · headDim` values addressed through row strides, so they can be
/// column blocks of one packed [q | k | v] projection. With `causal`, query i sees keys 0...i
/// (queries and keys are the same positions). Writes [queryCount, heads · headDim] into `output`.
public func scaledDotProductAttention(
    queries: UnsafePointer<Float>, queryCount: Int, queryStride: Int,
    keys: UnsafePointer<Float>, values: UnsafePointer<Float>, keyCount: Int, keyStride: Int,
    heads: Int, headDim: Int, causal: Bool,
    output: UnsafeMutablePointer<Float>, outputStride: Int, scratch: ScratchBuffer
) {
    precondition(!causal || queryCount == keyCount, "causal attention needs as many queries as keys")
    let scores = scratch.region(queryCount * keyCount)
    let scale = 1 / Float(headDim).squareRoot()
    for h in 0..<heads {
        let offset = h * headDim
        // scores[q, k] = scale · Q_h[q] · K_h[k]
        MatrixMultiply.gemm(
            transposeB: true, m: queryCount, n: keyCount, k: headDim, alpha: scale,
            a: queries + offset, lda: queryStride, b: keys + offset, ldb: keyStride,
            c: scores, ldc: keyCount)
        for q in 0..<queryCount {
            let row = scores + q * keyCount
            if causal && q + 1 < keyCount { (row + q + 1).update(repeating: -.infinity, count: keyCount - q - 1) }
            softmaxInPlace(row, count: keyCount)
        }
        // out_h[q] = Σ_k scores[q, k] · V_h[k]
        MatrixMultiply.gemm(
            m: queryCount, n: headDim, k: keyCount, a: scores, lda: keyCount,
            b: values + offset, ldb: keyStride, c: output + offset, ldc: outputStride)
    }
}

/// PyTorch's nn.MultiheadAttention (self-attention, packed in_proj) in inference mode.
public struct MultiHeadAttention: Sendable {
    /// [3·width, width]: rows 0..<width project queries, then keys, then values.
    public let inProjection: Linear
    public let outProjection: Linear
    public let heads: Int

    public init(inProjection: Linear, outProjection: Linear, heads: Int) {
        precondition(inProjection.outFeatures == 3 * inProjection.inFeatures, "in_proj must be [3·width, width]")
        precondition(inProjection.inFeatures % heads == 0, "width \(inProjection.inFeatures) not divisible by \(heads) heads")
        (self.inProjection, self.outProjection, self.heads) = (inProjection, outProjection, heads)
    }

    public var width: Int { inProjection.inFeatures }

    /// Self-attention within each of several sequences stored back to back: `sequenceLengths[i]` rows
    /// for sequence i, [Σ lengths, width] in and out. Sequences may differ in length (a ragged batch),
    /// so a batch of prompts costs the sum of their lengths, not count × the longest.
    public func apply(
        _ x: UnsafePointer<Float>, sequenceLengths: [Int], causal: Bool,
        into output: UnsafeMutablePointer<Float>, scratch: ScratchBuffer
    ) {
        let width = self.width
        let rows = sequenceLengths.reduce(0, +)
        var qkv = [Float](repeating: 0, count: rows * 3 * width)
        var mixed = [Float](repeating: 0, count: rows * width)
        qkv.withUnsafeMutableBufferPointer { qkv in
            inProjection.apply(x, rows: rows, into: qkv.baseAddress!)
            mixed.withUnsafeMutableBufferPointer { mixed in
                var first = 0
                for length in sequenceLengths {
                    let base = qkv.baseAddress! + first * 3 * width
                    scaledDotProductAttention(
                        queries: base, queryCount: length, queryStride: 3 * width,
                        keys: base + width, values: base + 2 * width, keyCount: length, keyStride: 3 * width,
                        heads: heads, headDim: width / heads, causal: causal,
                        output: mixed.baseAddress! + first * width, outputStride: width, scratch: scratch)
                    first += length
                }
                outProjection.apply(mixed.baseAddress!, rows: rows, into: output)
            }
        }
    }

    /// Self-attention over `batch` sequences of `sequence` rows each.
    public func apply(
        _ x: UnsafePointer<Float>, batch: Int, sequence: Int, causal: Bool,
        into output: UnsafeMutablePointer<Float>, scratch: ScratchBuffer
    ) {
        apply(x, sequenceLengths: [Int](repeating: sequence, count: batch), causal: causal, into: output, scratch: scratch)
    }
}
