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
    let head = HeadAttention(queryCount: queryCount, queryStride: queryStride, keyCount: keyCount, keyStride: keyStride,
                             headDim: headDim, causal: causal, outputStride: outputStride)
    let workspace = scratch.region(head.workspaceCount)
    for h in 0..<heads {
        let offset = h * headDim
        head.run(queries + offset, keys + offset, values + offset, output + offset, workspace: workspace)
    }
}

/// Self-attention within each of several sequences stored back to back (`sequenceLengths[i]` rows for
/// sequence i; Q, K, V and the output addressed as in `scaledDotProductAttention`), every (sequence, head)
/// pair an independent task split across the context's threads: a batch of 16 ViT images is 192 of them.
public func scaledDotProductAttention(
    queries: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int,
    sequenceLengths: [Int], heads: Int, headDim: Int, causal: Bool,
    output: UnsafeMutablePointer<Float>, outputStride: Int, compute: ComputeContext
) {
    let starts = sequenceStarts(sequenceLengths)
    for (sequence, length) in sequenceLengths.enumerated() where length >= LongSequenceAttention.minimumLength {
        let attention = LongSequenceAttention(length: length, stride: stride, headDim: headDim, causal: causal, outputStride: outputStride)
        let input = starts[sequence] * stride
        attention.run(heads: heads, queries + input, keys + input, values + input, output + starts[sequence] * outputStride,
                      compute: compute)
    }
    let short = sequenceLengths.indices.filter { sequenceLengths[$0] < LongSequenceAttention.minimumLength }
    let spans = short.map {
        let rows = starts[$0]..<(starts[$0] + sequenceLengths[$0])
        return AttentionSpan(queries: rows, keys: rows, outputRow: rows.lowerBound)
    }
    attendInParallel(spans, queries: queries, queryStride: stride, keys: keys, values: values, keyStride: stride, heads: heads,
                     headDim: headDim, causal: causal, output: output, outputStride: outputStride, compute: compute)
}

/// Self-attention of one query row per sequence (`queryRows[i]` of `queries` for sequence i, e.g. a class
/// token) over every key of its sequence (sequences of `sequenceLengths` rows stored back to back in
/// `keys` and `values`); writes row i of `output` for sequence i. Per query the same arithmetic as the
/// full attention above, so a tower that only needs its class token can skip the other queries exactly.
public func scaledDotProductAttention(
    queries: UnsafePointer<Float>, queryStride: Int, queryRows: [Int],
    keys: UnsafePointer<Float>, values: UnsafePointer<Float>, keyStride: Int, sequenceLengths: [Int],
    heads: Int, headDim: Int, output: UnsafeMutablePointer<Float>, outputStride: Int, compute: ComputeContext
) {
    precondition(queryRows.count == sequenceLengths.count, "\(queryRows.count) query rows for \(sequenceLengths.count) sequences")
    let starts = sequenceStarts(sequenceLengths)
    let spans = sequenceLengths.indices.map {
        AttentionSpan(queries: queryRows[$0]..<(queryRows[$0] + 1), keys: starts[$0]..<(starts[$0] + sequenceLengths[$0]), outputRow: $0)
    }
    attendInParallel(spans, queries: queries, queryStride: queryStride, keys: keys, values: values, keyStride: keyStride, heads: heads,
                     headDim: headDim, causal: false, output: output, outputStride: outputStride, compute: compute)
}

/// The first row of each of several sequences stored back to back.
public func sequenceStarts(_ sequenceLengths: [Int]) -> [Int] {
    var starts = [Int](), first = 0
    for length in sequenceLengths {
        starts.append(first)
        first += length
    }
    return starts
}

/// Query rows `queries` attending to key rows `keys`, written to output rows from `outputRow` on (row
/// indices into the matrices' strided storage).
private struct AttentionSpan {
    let queries: Range<Int>
    let keys: Range<Int>
    let outputRow: Int
}

/// Every (span, head) pair as an independent task across the context's threads, each on `HeadAttention`.
private func attendInParallel(
    _ spans: [AttentionSpan], queries: UnsafePointer<Float>, queryStride: Int,
    keys: UnsafePointer<Float>, values: UnsafePointer<Float>, keyStride: Int,
    heads: Int, headDim: Int, causal: Bool, output: UnsafeMutablePointer<Float>, outputStride: Int, compute: ComputeContext
) {
    func head(_ span: AttentionSpan) -> HeadAttention {
        HeadAttention(queryCount: span.queries.count, queryStride: queryStride, keyCount: span.keys.count, keyStride: keyStride,
                      headDim: headDim, causal: causal, outputStride: outputStride)
    }
    let largest = spans.map { head($0).workspaceCount }.max() ?? 0
    compute.parallelFor(spans.count * heads) { tasks in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: largest) { workspace in
            for task in tasks {
                let (index, h) = task.quotientAndRemainder(dividingBy: heads)
                let span = spans[index], offset = h * headDim
                head(span).run(queries + span.queries.lowerBound * queryStride + offset, keys + span.keys.lowerBound * keyStride + offset,
                               values + span.keys.lowerBound * keyStride + offset, output + span.outputRow * outputStride + offset,
                               workspace: workspace.baseAddress!)
            }
        }
    }
}

/// softmax(Q Kᵀ / √d) V for every head of one long sequence (a 512–896 px tower's 1024–4096 patches), as two
/// packed products around a row softmax: at that length the products dominate, and `PackedMatrix` runs them
/// several times faster than `HeadAttention`'s one-query-at-a-time kernel. The heads are split across the
/// context's threads, each head's products on its own thread (its Kᵀ and V packed there once), so the whole
/// tower stays on the context's pool: OpenBLAS's threads would spin beside it between steps. Queries go in
/// blocks whose scores fit in ~1 MB (L2). Short sequences (CLIP's 50–257 tokens, Qwen2.5-VL's windows) stay
/// on `HeadAttention`.
struct LongSequenceAttention {
    static let minimumLength = 512
    let length: Int
    let stride: Int
    let headDim: Int
    let causal: Bool
    let outputStride: Int

    /// Head h reads columns h·headDim..<(h+1)·headDim of the query, key and value rows and writes the same
    /// columns of the output rows.
    func run(heads: Int, _ queries: UnsafePointer<Float>, _ keys: UnsafePointer<Float>, _ values: UnsafePointer<Float>,
             _ output: UnsafeMutablePointer<Float>, compute: ComputeContext) {
        let (length, stride, headDim) = (self.length, self.stride, self.headDim)
        let block = min(length, max(64, (1 << 18) / length)), scale = 1 / Float(headDim).squareRoot()
        let (noScoreBias, noOutputBias) = ([Float](repeating: 0, count: length), [Float](repeating: 0, count: headDim))
        compute.parallelFor(heads) { part in
            let thisThread = compute.with(threads: 1)
            withUnsafeTemporaryAllocation(of: Float.self, capacity: block * length) { scores in
                let scores = scores.baseAddress!
                for h in part {
                    let (q, k, v, out) = (queries + h * headDim, keys + h * headDim, values + h * headDim, output + h * headDim)
                    // B = Kᵀ/√d [headDim × length], given as its transpose's rows (K's rows); B = V [length × headDim],
                    // given as Vᵀ's rows (V's columns).
                    let scaledKeys = PackedMatrix(transposing: { t, row in for d in 0..<headDim { row[d] = k[t * stride + d] * scale } },
                                                  rows: headDim, columns: length, compute: thisThread)
                    let valueMatrix = PackedMatrix(transposing: { d, row in for t in 0..<length { row[t] = v[t * stride + d] } },
                                                   rows: length, columns: headDim, compute: thisThread)
                    for q0 in Swift.stride(from: 0, to: length, by: block) {
                        let rows = min(block, length - q0)
                        scaledKeys.multiplyOnThisThread(q + q0 * stride, lda: stride, m: rows, into: scores, ldc: length, bias: noScoreBias)
                        for r in 0..<rows {
                            let row = scores + r * length, visible = causal ? q0 + r + 1 : length
                            softmaxInPlace(row, count: visible)
                            for t in visible..<length { row[t] = 0 }
                        }
                        valueMatrix.multiplyOnThisThread(scores, lda: length, m: rows, into: out + q0 * outputStride, ldc: outputStride,
                                                         bias: noOutputBias)
                    }
                }
            }
        }
    }
}

/// softmax(q Kᵀ / √d) V for one head, in SIMD over contiguous rows: Kᵀ is copied once into the workspace
/// (padded with zeros to whole blocks of 64 keys), so a block of 64 scores is a sum of query values times
/// Kᵀ rows held in eight vector registers, and an output row a sum of probabilities times V rows. Each
/// query's score row is used up (softmax, mix) before the next, so the workspace holds one. The softmax
/// stays `softmaxInPlace` (libm's expf): the llama.cpp parity of the Idefics3 tower (1e-5) does not hold
/// with the 8-lane exponential of the activations.
struct HeadAttention {
    let queryCount: Int
    let queryStride: Int
    let keyCount: Int
    let keyStride: Int
    let headDim: Int
    let causal: Bool
    let outputStride: Int

    /// Keys rounded up to whole blocks of eight 8-wide vectors.
    var paddedKeys: Int { (keyCount + 63) / 64 * 64 }
    /// Floats of workspace: Kᵀ [headDim × paddedKeys], then one query's scores.
    var workspaceCount: Int { (headDim + 1) * paddedKeys }

    func run(_ queries: UnsafePointer<Float>, _ keys: UnsafePointer<Float>, _ values: UnsafePointer<Float>,
             _ output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let width = paddedKeys
        let (transposed, scores) = (workspace, workspace + headDim * width)
        for d in 0..<headDim {
            let row = transposed + d * width
            for k in 0..<keyCount { row[k] = keys[k * keyStride + d] }
            for k in keyCount..<width { row[k] = 0 }
        }
        let scale = 1 / Float(headDim).squareRoot()
        for q in 0..<queryCount {
            let visible = causal ? q + 1 : keyCount
            for k0 in Swift.stride(from: 0, to: visible, by: 64) {
                scoreBlock(queries + q * queryStride, transposed + k0, into: scores + k0, scale: scale)
            }
            softmaxInPlace(scores, count: visible)
            mix(scores, count: visible, values, into: output + q * outputStride)
        }
    }

    /// row[0..<64] = scale · q · Kᵀ[·, 0..<64] (`transposed` points at the block's first key).
    @inline(__always)
    private func scoreBlock(_ query: UnsafePointer<Float>, _ transposed: UnsafePointer<Float>, into row: UnsafeMutablePointer<Float>,
                            scale: Float) {
        let width = paddedKeys
        var (s0, s1, s2, s3) = (SIMD8<Float>.zero, SIMD8<Float>.zero, SIMD8<Float>.zero, SIMD8<Float>.zero)
        var (s4, s5, s6, s7) = (SIMD8<Float>.zero, SIMD8<Float>.zero, SIMD8<Float>.zero, SIMD8<Float>.zero)
        for d in 0..<headDim {
            let x = SIMD8<Float>(repeating: query[d] * scale), k = transposed + d * width
            s0 = s0.addingProduct(x, loadVector8(k)); s1 = s1.addingProduct(x, loadVector8(k + 8))
            s2 = s2.addingProduct(x, loadVector8(k + 16)); s3 = s3.addingProduct(x, loadVector8(k + 24))
            s4 = s4.addingProduct(x, loadVector8(k + 32)); s5 = s5.addingProduct(x, loadVector8(k + 40))
            s6 = s6.addingProduct(x, loadVector8(k + 48)); s7 = s7.addingProduct(x, loadVector8(k + 56))
        }
        storeVector8(s0, row); storeVector8(s1, row + 8); storeVector8(s2, row + 16); storeVector8(s3, row + 24)
        storeVector8(s4, row + 32); storeVector8(s5, row + 40); storeVector8(s6, row + 48); storeVector8(s7, row + 56)
    }

    /// out = Σₖ p[k] · V[k] over the first `count` keys: 64 columns at a time in eight vector registers,
    /// then 8 at a time, then one.
    @inline(__always)
    private func mix(_ p: UnsafePointer<Float>, count: Int, _ values: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        var d = 0
        while d + 64 <= headDim {
            var (s0, s1, s2, s3) = (SIMD8<Float>.zero, SIMD8<Float>.zero, SIMD8<Float>.zero, SIMD8<Float>.zero)
            var (s4, s5, s6, s7) = (SIMD8<Float>.zero, SIMD8<Float>.zero, SIMD8<Float>.zero, SIMD8<Float>.zero)
            for k in 0..<count {
                let x = SIMD8<Float>(repeating: p[k]), v = values + k * keyStride + d
                s0 = s0.addingProduct(x, loadVector8(v)); s1 = s1.addingProduct(x, loadVector8(v + 8))
                s2 = s2.addingProduct(x, loadVector8(v + 16)); s3 = s3.addingProduct(x, loadVector8(v + 24))
                s4 = s4.addingProduct(x, loadVector8(v + 32)); s5 = s5.addingProduct(x, loadVector8(v + 40))
                s6 = s6.addingProduct(x, loadVector8(v + 48)); s7 = s7.addingProduct(x, loadVector8(v + 56))
            }
            let o = out + d
            storeVector8(s0, o); storeVector8(s1, o + 8); storeVector8(s2, o + 16); storeVector8(s3, o + 24)
            storeVector8(s4, o + 32); storeVector8(s5, o + 40); storeVector8(s6, o + 48); storeVector8(s7, o + 56)
            d += 64
        }
        while d + 8 <= headDim {
            var sum = SIMD8<Float>.zero
            for k in 0..<count { sum = sum.addingProduct(p[k], loadVector8(values + k * keyStride + d)) }
            storeVector8(sum, out + d)
            d += 8
        }
        for j in d..<headDim {
            var sum: Float = 0
            for k in 0..<count { sum += p[k] * values[k * keyStride + j] }
            out[j] = sum
        }
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
