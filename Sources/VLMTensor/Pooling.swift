/// Non-overlapping average pooling (AvgPool2d(k), stride k, floor mode) of channels-last images:
/// [images, height, width, channels] → [images, height / k, width / k, channels].
public func averagePool2DChannelsLast(_ input: [Float], images: Int, height: Int, width: Int, channels: Int, kernel: Int,
                                      compute: ComputeContext)
    -> (values: [Float], height: Int, width: Int)
{
    precondition(input.count == images * height * width * channels, "average pool input has \(input.count) values")
    let (oh, ow) = (height / kernel, width / kernel)
    let scale = 1 / Float(kernel * kernel)
    let output = [Float](unsafeUninitializedCapacity: images * oh * ow * channels) { buffer, initialized in
        input.withUnsafeBufferPointer { x in
            let (source, destination) = (x.baseAddress!, buffer.baseAddress!)
            compute.parallelFor(images * oh, minimumPartSize: 2) { outRows in
                for r in outRows {
                    let (n, oy) = (r / oh, r % oh)
                    for ox in 0..<ow {
                        let dst = destination + (r * ow + ox) * channels
                        dst.update(repeating: 0, count: channels)
                        for i in 0..<kernel {
                            for j in 0..<kernel {
                                let src = source + ((n * height + oy * kernel + i) * width + ox * kernel + j) * channels
                                for c in 0..<channels { dst[c] += src[c] }
                            }
                        }
                        for c in 0..<channels { dst[c] *= scale }
                    }
                }
            }
        }
        initialized = buffer.count
    }
    return (output, oh, ow)
}

/// Attention pooling by one query per image (CLIP's AttentionPool2d) with the key and value projections
/// folded into the query and into the attention weights, so that no token's key or value is ever
/// projected. Per head h, with attention weights a_h(t) (which sum to 1):
///   score_h(t) = q_h · (W_k,h x_t + b_k,h) = (W_k,hᵀ q_h) · x_t + q_h · b_k,h, and the last term, the same
///     for every token, cancels in the softmax;
///   out_h = Σ_t a_h(t) (W_v,h x_t + b_v,h) = W_v,h (Σ_t a_h(t) x_t) + b_v,h.
/// Exact in real arithmetic (only the float32 summation order differs). Per image that is 4·width²
/// multiply-adds for the folds plus 2·tokens·heads·width for the scores and the mix, instead of
/// 2·tokens·width² for projecting every token's key and value (RN50: 0.05 instead of 0.84 GFLOP).
public struct FoldedAttentionPool: Sendable {
    public let width: Int
    public let heads: Int
    /// [width, width], PyTorch's [out, in] layout: row d is output feature d, in head d / headDim.
    let keyWeight: [Float]
    let valueWeight: [Float]
    let valueBias: [Float]

    public init(key: Linear, value: Linear, heads: Int) {
        precondition(key.inFeatures == key.outFeatures && value.inFeatures == key.inFeatures && value.outFeatures == key.outFeatures,
                     "attention pool projections must be square and of one width")
        precondition(key.outFeatures % heads == 0, "width \(key.outFeatures) does not split into \(heads) heads")
        (width, self.heads) = (key.outFeatures, heads)
        (keyWeight, valueWeight) = (key.weight, value.weight)
        valueBias = value.bias ?? [Float](repeating: 0, count: width)
    }

    var headDim: Int { width / heads }

    /// The attention output for each image's query, heads concatenated ([batch, width], before the
    /// output projection). `queries`: [batch, width], already projected (bias included);
    /// `tokens`: [batch, sequence, width], the tokens keys and values would be projected from.
    public func callAsFunction(queries: [Float], tokens: [Float], batch: Int, sequence: Int, scratch: ScratchBuffer) -> [Float] {
        precondition(queries.count == batch * width && tokens.count == batch * sequence * width, "attention pool shapes")
        let folded = batch * heads * width
        let workspace = scratch.region(2 * folded + heads * sequence)
        let (foldedQueries, mixedTokens, weights) = (workspace, workspace + folded, workspace + 2 * folded)
        queries.withUnsafeBufferPointer { foldKeys(into: foldedQueries, queries: $0.baseAddress!, batch: batch) }
        tokens.withUnsafeBufferPointer { x in
            for b in 0..<batch {
                mix(x.baseAddress! + b * sequence * width, sequence: sequence, foldedQueries: foldedQueries + b * heads * width,
                    weights: weights, into: mixedTokens + b * heads * width)
            }
        }
        return [Float](unsafeUninitializedCapacity: batch * width) { output, initialized in
            projectValues(mixedTokens, batch: batch, into: output.baseAddress!)
            initialized = batch * width
        }
    }

    /// u[b][h] = W_k,hᵀ q_h / √headDim ([batch, heads, width]), for all images at once, head by head.
    private func foldKeys(into u: UnsafeMutablePointer<Float>, queries q: UnsafePointer<Float>, batch: Int) {
        keyWeight.withUnsafeBufferPointer { wk in
            for h in 0..<heads {
                MatrixMultiply.gemm(m: batch, n: width, k: headDim, alpha: 1 / Float(headDim).squareRoot(), a: q + h * headDim, lda: width,
                                    b: wk.baseAddress! + h * headDim * width, ldb: width, c: u + h * width, ldc: heads * width)
            }
        }
    }

    /// One image: a[h][t] = softmax_t(u[h] · x_t), then mixed[h] = Σ_t a[h][t] x_t ([heads, width]).
    private func mix(_ x: UnsafePointer<Float>, sequence: Int, foldedQueries u: UnsafePointer<Float>, weights a: UnsafeMutablePointer<Float>,
                     into mixed: UnsafeMutablePointer<Float>) {
        MatrixMultiply.gemm(transposeB: true, m: heads, n: sequence, k: width, a: u, lda: width, b: x, ldb: width, c: a, ldc: sequence)
        for h in 0..<heads { softmaxInPlace(a + h * sequence, count: sequence) }
        MatrixMultiply.gemm(m: heads, n: width, k: sequence, a: a, lda: sequence, b: x, ldb: width, c: mixed, ldc: width)
    }

    /// out[b][h] = W_v,h mixed[b][h] + b_v,h ([batch, width]), for all images at once, head by head.
    private func projectValues(_ mixed: UnsafePointer<Float>, batch: Int, into out: UnsafeMutablePointer<Float>) {
        valueWeight.withUnsafeBufferPointer { wv in
            for h in 0..<heads {
                MatrixMultiply.gemm(transposeB: true, m: batch, n: headDim, k: width, a: mixed + h * width, lda: heads * width,
                                    b: wv.baseAddress! + h * headDim * width, ldb: width, c: out + h * headDim, ldc: width)
            }
        }
        for b in 0..<batch { for d in 0..<width { out[b * width + d] += valueBias[d] } }
    }
}
