// The decoder forward pass: embeddings -> N x (attention + gated feed-forward) -> norm -> logits.
//
// Read top to bottom like llama2.c's `forward`; the batch dimension (prefill) is the only addition.
// One pass serves every family in `Architecture.registry`: its options (biases, Q/K norms, post-norms,
// GeGLU, sliding-window layers, embedding and query scaling) are switched on where the family has them.
// Activations are row-major [token][feature] Float arrays.
import VLMTensor

/// Which positions of a forward pass produce logits.
public enum LogitRows: Sendable { case last, all }

public struct ForwardOutput: Sendable {
    /// rows x vocabularySize, row-major (rows = 1 for `.last`, the batch size for `.all`).
    public var logits: [Float]
    /// For each requested layer: [token][head][position 0..<cache.count] softmax weights, rounded to
    /// fp16 as llama.cpp applies them (zero past the causal limit of each token).
    public var attention: [Int: [Float]]
}

/// Immutable after load: the threads a pass uses come with its `ComputeContext`.
public final class Transformer: @unchecked Sendable {
    public let hyperparameters: Hyperparameters
    let weights: ModelWeights

    init(weights: ModelWeights, hyperparameters: Hyperparameters) {
        self.weights = weights
        self.hyperparameters = hyperparameters
    }

    public func makeCache(capacity: Int) -> KVCache { KVCache(hyperparameters: hyperparameters, capacity: capacity) }

    /// Runs `tokens` at positions `cache.count...`, appends their keys/values to `cache`, returns logits.
    /// Throws `ComputeCancelled` between layers once the context is cancelled (a 512-token batch is seconds of
    /// work); the cache then keeps its count, so the half-written positions are simply overwritten later.
    public func forward(_ tokens: [Int32], cache: inout KVCache, logits rows: LogitRows = .last,
                        attentionLayers: Set<Int> = [], compute: ComputeContext = ComputeContext()) throws -> ForwardOutput {
        let hp = hyperparameters
        let n = tokens.count, d = hp.embeddingLength, start = cache.count
        guard n > 0 else { return ForwardOutput(logits: [], attention: [:]) }
        guard start + n <= cache.capacity else { throw LanguageModelError.contextFull(needed: start + n, capacity: cache.capacity) }
        for t in tokens where t < 0 || Int(t) >= hp.vocabularySize {
            throw LanguageModelError.tokenOutOfRange(t, vocabularySize: hp.vocabularySize)
        }

        // Token embeddings (Gemma scales them by √d; input embeddings such as image tokens are left as given).
        var x = [Float](repeating: 0, count: n * d)
        x.withUnsafeMutableBufferPointer { x in
            for (i, t) in tokens.enumerated() { weights.tokenEmbedding.dequantizeRow(Int(t), into: x.baseAddress! + i * d) }
        }
        if hp.family.scalesEmbeddings {
            let scale = Float(d).squareRoot()
            for i in 0..<x.count { x[i] *= scale }
        }
        return try forwardEmbedded(x, count: n, cache: &cache, logits: rows, attentionLayers: attentionLayers,
                                   compute: compute)
    }

    /// The decoder from input embeddings `x` ([n][embeddingLength]) into cache slots `cache.count...`, at
    /// RoPE positions `cache.nextPosition...` (or an M-RoPE image's `grid` positions), seeing each other as
    /// `batchAttention` says (`forward(_:)` after its token lookup; `forward(embeddings:)` for inputs such
    /// as image tokens).
    func forwardEmbedded(_ x: [Float], count n: Int, cache: inout KVCache, logits rows: LogitRows,
                         attentionLayers: Set<Int>, batchAttention: BatchAttention = .causal, grid: GridPositions? = nil,
                         compute: ComputeContext) throws -> ForwardOutput {
        let hp = hyperparameters
        let d = hp.embeddingLength, start = cache.count, position = cache.nextPosition
        var x = x
        let globalAngles = grid.map { grid in (0..<n).map { sectionedRopeAngles(grid.sections($0)) } }
            ?? ropeAngles(positions: position..<(position + n), base: hp.ropeFrequencyBase)
        let localAngles = hp.slidingWindow > 0 ? ropeAngles(positions: position..<(position + n), base: hp.ropeFrequencyBaseLocal) : globalAngles

        var normed = [Float](repeating: 0, count: n * d)
        var q = [Float](repeating: 0, count: n * hp.queryDimension)
        var k = [Float](repeating: 0, count: n * hp.keyValueDimension)
        var v = [Float](repeating: 0, count: n * hp.keyValueDimension)
        var attended = [Float](repeating: 0, count: n * hp.queryDimension)
        var projected = [Float](repeating: 0, count: n * d)
        var gate = [Float](repeating: 0, count: n * hp.feedForwardLength)
        var up = [Float](repeating: 0, count: n * hp.feedForwardLength)
        var attention: [Int: [Float]] = [:]

        for (l, layer) in weights.layers.enumerated() {
            try compute.checkCancellation()
            // Attention block: x += post(Wo * attention(rope(Wq xn), rope(Wk xn), Wv xn)), xn = rmsnorm(x),
            // with the family's biases, per-head Q/K norms and post-norm.
            rmsNormRows(x, weight: layer.attentionNorm, into: &normed, rows: n, compute: compute)
            q.withUnsafeMutableBufferPointer { q in
                k.withUnsafeMutableBufferPointer { k in
                    v.withUnsafeMutableBufferPointer { v in
                        multiply([(layer.query, q.baseAddress!), (layer.key, k.baseAddress!), (layer.value, v.baseAddress!)],
                                 normed, rows: n, compute: compute)
                    }
                }
            }
            if let b = layer.queryBias { addBias(b, to: &q) }
            if let b = layer.keyBias { addBias(b, to: &k) }
            if let b = layer.valueBias { addBias(b, to: &v) }
            if let w = layer.queryNorm { rmsNormInPlace(&q, weight: w, compute: compute) }
            if let w = layer.keyNorm { rmsNormInPlace(&k, weight: w, compute: compute) }
            let angles = hp.isSlidingWindowLayer(l) ? localAngles : globalAngles
            applyRope(&q, heads: hp.headCount, angles: angles, compute: compute)
            applyRope(&k, heads: hp.headCountKV, angles: angles, compute: compute)
            if hp.family.scalesQueries { scaleRows(&q, by: hp.attentionScale, rows: n, compute: compute) }
            store(keys: k, values: v, layer: l, at: start, count: n, in: &cache, compute: compute)
            let weightsOut = attend(q, layer: l, start: start, count: n, cache: cache, into: &attended,
                                    record: attentionLayers.contains(l), batchAttention: batchAttention, compute: compute)
            if let weightsOut { attention[l] = weightsOut }
            multiply(layer.attentionOutput, attended, rows: n, into: &projected, compute: compute)
            if let w = layer.postAttentionNorm { rmsNormInPlace(&projected, weight: w, compute: compute) }
            addRows(projected, to: &x, rows: n, compute: compute)

            // Feed-forward block: x += post(W_down (act(W_gate xn) * W_up xn)), xn = rmsnorm(x).
            rmsNormRows(x, weight: layer.feedForwardNorm, into: &normed, rows: n, compute: compute)
            gate.withUnsafeMutableBufferPointer { gate in
                up.withUnsafeMutableBufferPointer { up in
                    multiply([(layer.gate, gate.baseAddress!), (layer.up, up.baseAddress!)], normed, rows: n, compute: compute)
                }
            }
            gatedActivation(&gate, up, rows: n, compute: compute)
            multiply(layer.down, gate, rows: n, into: &projected, compute: compute)
            if let w = layer.postFeedForwardNorm { rmsNormInPlace(&projected, weight: w, compute: compute) }
            addRows(projected, to: &x, rows: n, compute: compute)
        }
        cache.advance(by: n, positions: grid?.advance)

        // Final norm and the vocabulary projection, only for the rows asked for.
        let first = rows == .last ? n - 1 : 0, outRows = n - first
        let lastRows = Array(x[(first * d)...])
        var finalNormed = [Float](repeating: 0, count: outRows * d)
        rmsNormRows(lastRows, weight: weights.outputNorm, into: &finalNormed, rows: outRows, compute: compute)
        var logits = [Float](repeating: 0, count: outRows * hp.vocabularySize)
        multiply(weights.output, finalNormed, rows: outRows, into: &logits, compute: compute)
        if let cap = hp.finalLogitSoftcap { LayerMath.softcap(&logits, cap: cap) }
        return ForwardOutput(logits: logits, attention: attention)
    }

    // MARK: - Steps

    // The row-wise steps between the matrix products (norms, RoPE, the gated activation) are split
    // over the threads by token (or head) rows: each row is computed exactly as alone, and left on one
    // thread they kept the second core idle for a fifth of a two-thread prefill.

    private func rmsNormRows(_ x: [Float], weight: [Float], into y: inout [Float], rows: Int, compute: ComputeContext) {
        let d = weight.count, eps = hyperparameters.rmsEpsilon
        x.withUnsafeBufferPointer { x in
            y.withUnsafeMutableBufferPointer { y in
                let (x, y) = (Shared(x.baseAddress!), Shared(y.baseAddress!))
                compute.parallelFor(rows, minimumPartSize: 16) { part in
                    for r in part { LayerMath.rmsNorm(x.pointer + r * d, weight: weight, epsilon: eps, into: y.pointer + r * d) }
                }
            }
        }
    }

    /// act(gate) * up of each of `rows` token rows, into `gate` (SwiGLU or GeGLU by family).
    private func gatedActivation(_ gate: inout [Float], _ up: [Float], rows: Int, compute: ComputeContext) {
        let width = hyperparameters.feedForwardLength, activation = hyperparameters.family.activation
        gate.withUnsafeMutableBufferPointer { g in
            up.withUnsafeBufferPointer { u in
                let (g, u) = (Shared(g.baseAddress!), Shared(u.baseAddress!))
                compute.parallelFor(rows, minimumPartSize: 4) { part in
                    let offset = part.lowerBound * width, count = part.count * width
                    switch activation {
                    case .silu: LayerMath.swiglu(g.pointer + offset, u.pointer + offset, count: count)
                    case .geluTanh: LayerMath.geglu(g.pointer + offset, u.pointer + offset, count: count)
                    }
                }
            }
        }
    }

    /// RMSNorm of each `weight.count`-long row of `x` (each head of Q or K, or each token), in place.
    private func rmsNormInPlace(_ x: inout [Float], weight: [Float], compute: ComputeContext) {
        let width = weight.count, eps = hyperparameters.rmsEpsilon, rows = x.count / width
        x.withUnsafeMutableBufferPointer { x in
            let x = Shared(x.baseAddress!)
            compute.parallelFor(rows, minimumPartSize: 16) { part in
                for r in part {
                    let row = x.pointer + r * width
                    LayerMath.rmsNorm(row, weight: weight, epsilon: eps, into: row)
                }
            }
        }
    }

    /// Adds `bias` to each row of `x`.
    private func addBias(_ bias: [Float], to x: inout [Float]) {
        let width = bias.count
        for i in 0..<x.count { x[i] += bias[i % width] }
    }

    /// RoPE angles of each position, with the file's frequency factors and linear scaling.
    private func ropeAngles(positions: Range<Int>, base: Float) -> [[(cos: Float, sin: Float)]] {
        let hp = hyperparameters
        return positions.map {
            LayerMath.ropeAngles(position: $0, dimensions: hp.ropeDimensionCount, base: base,
                                 frequencyScale: hp.ropeFrequencyScale, frequencyFactors: weights.ropeFrequencyFactors)
        }
    }

    /// M-RoPE angles of one token at (temporal, row, column, extra) positions: pair k turns by the angle
    /// of the position its section (k mod the sections' total) names, as ggml's rope_multi.
    private func sectionedRopeAngles(_ positions: [Int]) -> [(cos: Float, sin: Float)] {
        let hp = hyperparameters, total = hp.ropeSections.reduce(0, +)
        let bySection = positions.map { ropeAngles(positions: $0..<($0 + 1), base: hp.ropeFrequencyBase)[0] }
        let ends = hp.ropeSections.reduce(into: [Int]()) { $0.append(($0.last ?? 0) + $1) }
        return (0..<(hp.ropeDimensionCount / 2)).map { k in
            let sector = k % total
            return bySection[ends.firstIndex { sector < $0 } ?? 3][k]
        }
    }

    private func multiply(_ w: QuantizedMatrix, _ x: [Float], rows: Int, into y: inout [Float], compute: ComputeContext) {
        x.withUnsafeBufferPointer { x in
            y.withUnsafeMutableBufferPointer { w.multiply(x.baseAddress!, batch: rows, into: $0.baseAddress!, compute: compute) }
        }
    }

    /// Products of one input with several matrices, handed to the workers together.
    private func multiply(_ products: [(matrix: QuantizedMatrix, output: UnsafeMutablePointer<Float>)], _ x: [Float], rows: Int,
                          compute: ComputeContext) {
        x.withUnsafeBufferPointer { QuantizedMatrix.multiply(products, $0.baseAddress!, batch: rows, compute: compute) }
    }

    private func applyRope(_ x: inout [Float], heads: Int, angles: [[(cos: Float, sin: Float)]], compute: ComputeContext) {
        let hp = hyperparameters, width = heads * hp.headDimension
        x.withUnsafeMutableBufferPointer { x in
            let x = Shared(x.baseAddress!)
            compute.parallelFor(angles.count, minimumPartSize: 16) { part in
                for i in part {
                    LayerMath.applyRope(x.pointer + i * width, heads: heads, headDimension: hp.headDimension,
                                        angles: angles[i], adjacentPairs: hp.family.rope == .adjacentPairs)
                }
            }
        }
    }

    /// Each token's keys and values into the cache as fp16, split over the threads by token (a token's
    /// key is one row; its values one column of the transposed value rows, disjoint from the others').
    private func store(keys k: [Float], values v: [Float], layer: Int, at start: Int, count n: Int, in cache: inout KVCache,
                       compute: ComputeContext) {
        let width = hyperparameters.keyValueDimension
        let keyBase = cache.keyOffset(layer: layer, position: start), valueBase = cache.valueOffset(layer: layer, dimension: 0) + start
        let valueStride = cache.capacity
        k.withUnsafeBufferPointer { k in
            v.withUnsafeBufferPointer { v in
                cache.keys.withUnsafeMutableBufferPointer { keys in
                    cache.values.withUnsafeMutableBufferPointer { values in
                        let (k, v) = (Shared(k.baseAddress!), Shared(v.baseAddress!))
                        let (keys, values) = (Shared(keys.baseAddress! + keyBase), Shared(values.baseAddress! + valueBase))
                        compute.parallelFor(n, minimumPartSize: 16) { part in
                            for i in part {
                                for j in 0..<width {
                                    keys.pointer[i * width + j] = Float16(k.pointer[i * width + j])
                                    values.pointer[j * valueStride + i] = Float16(v.pointer[i * width + j])
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// x += y (the residual stream plus a block's output), split over the threads by token rows.
    private func addRows(_ y: [Float], to x: inout [Float], rows: Int, compute: ComputeContext) {
        let width = x.count / rows
        y.withUnsafeBufferPointer { y in
            x.withUnsafeMutableBufferPointer { x in
                let (x, y) = (Shared(x.baseAddress!), Shared(y.baseAddress!))
                compute.parallelFor(rows, minimumPartSize: 16) { part in
                    for i in part.lowerBound * width..<part.upperBound * width { x.pointer[i] += y.pointer[i] }
                }
            }
        }
    }

    /// x *= scale, split over the threads by token rows.
    private func scaleRows(_ x: inout [Float], by scale: Float, rows: Int, compute: ComputeContext) {
        let width = x.count / rows
        x.withUnsafeMutableBufferPointer { x in
            let x = Shared(x.baseAddress!)
            compute.parallelFor(rows, minimumPartSize: 16) { part in
                for i in part.lowerBound * width..<part.upperBound * width { x.pointer[i] *= scale }
            }
        }
    }

    /// Grouped-query attention of `count` new queries over cache positions 0..<start+count: causal, or
    /// with every query seeing the whole batch (`.bidirectional`).
    ///
    /// As llama.cpp computes it with its default f16 cache (no flash attention): queries rounded to fp16
    /// for Q.K, softmax over the KV length padded to 16 lanes, weights rounded to fp16 before weighting V.
    /// Its dot products run through llamafile's tinyBLAS for a batch of tokens but through
    /// `ggml_vec_dot_f16` for a single token; the two sum in different orders, so we follow suit.
    /// Returns the weights when `record` is set.
    private func attend(_ q: [Float], layer: Int, start: Int, count n: Int, cache: KVCache,
                        into out: inout [Float], record: Bool, batchAttention: BatchAttention,
                        compute: ComputeContext) -> [Float]? {
        let hp = hyperparameters, heads = hp.headCount, span = start + n
        let padded = (span + 15) / 16 * 16
        var recorded = record ? [Float](repeating: 0, count: n * heads * span) : []
        let keyBase = cache.keyOffset(layer: layer, position: 0), valueBase = cache.valueOffset(layer: layer, dimension: 0)
        let capacity = cache.capacity
        let jobs = n * heads
        let order: HalfDot.Order = n == 1 ? .vector : .tiled
        let window = hp.isSlidingWindowLayer(layer) ? hp.slidingWindow : Int.max
        let scoreScale = hp.family.scalesQueries ? 1 : hp.attentionScale
        q.withUnsafeBufferPointer { q in
            cache.keys.withUnsafeBufferPointer { keys in
                cache.values.withUnsafeBufferPointer { values in
                    out.withUnsafeMutableBufferPointer { out in
                        recorded.withUnsafeMutableBufferPointer { recorded in
                            let q = Shared(q.baseAddress!), keys = Shared(keys.baseAddress! + keyBase)
                            let values = Shared(values.baseAddress! + valueBase), out = Shared(out.baseAddress!)
                            let rec = Shared(record ? recorded.baseAddress : nil)  // an empty array may still have a base address
                            // Many parts per thread: with a causal batch later tokens see more keys, so the last
                            // parts are the heaviest, and while one runs the other threads may have nothing left.
                            compute.parallelFor(jobs, parts: 16 * compute.threads) { part in
                                var scratch = AttentionScratch(headDimension: hp.headDimension, padded: padded)
                                for job in part {
                                    let i = job / heads, h = job % heads
                                    let visible = batchAttention == .causal ? start + i + 1 : span
                                    attendOneHead(query: q.pointer + i * hp.queryDimension + h * hp.headDimension,
                                                  kvHead: h / (heads / hp.headCountKV), position: start + i,
                                                  visible: visible, window: window, scale: scoreScale,
                                                  keys: keys.pointer, values: values.pointer, valueStride: capacity,
                                                  order: order, scratch: &scratch,
                                                  out: out.pointer + i * hp.queryDimension + h * hp.headDimension)
                                    if let r = rec.pointer {
                                        for t in 0..<visible { r[(i * heads + h) * span + t] = scratch.weights[t] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return record ? recorded : nil
    }

    /// llama.cpp runs attention over the KV length rounded up to 256 cells (masked cells weigh zero).
    static func kvPadding(_ n: Int) -> Int { (n + 255) / 256 * 256 }

    private struct AttentionScratch {
        var query: [Float]
        var weights: [Float]
        init(headDimension: Int, padded: Int) {
            query = [Float](repeating: 0, count: headDimension)
            weights = [Float](repeating: 0, count: padded)
        }
    }

    /// One head of the query at `position`: softmax(scale q.K) V over the first `visible` positions, of
    /// which those `window` or more behind `position` are not seen (llama.cpp masks them to -inf: they keep
    /// their place in the sums).
    private func attendOneHead(query qh: UnsafePointer<Float>, kvHead: Int, position: Int, visible: Int, window: Int, scale: Float,
                               keys: UnsafePointer<Float16>, values: UnsafePointer<Float16>, valueStride: Int,
                               order: HalfDot.Order,
                               scratch: inout AttentionScratch, out o: UnsafeMutablePointer<Float>) {
        let hp = hyperparameters, hd = hp.headDimension, kvWidth = hp.keyValueDimension
        let firstSeen = max(0, position + 1 - window)
        for j in 0..<hd { scratch.query[j] = roundedThroughHalf(qh[j]) }
        let padded = scratch.weights.count
        scratch.query.withUnsafeBufferPointer { query in
            scratch.weights.withUnsafeMutableBufferPointer { w in
                for t in 0..<firstSeen { w[t] = -.infinity }
                var t = firstSeen
                // A batch: four keys per pass over the query (each dot exactly as alone).
                while order == .tiled && hd % 16 == 0 && t + 4 <= visible {
                    let key = keys + t * kvWidth + kvHead * hd
                    let dots = HalfDot.tiledDots4((key, key + kvWidth, key + 2 * kvWidth, key + 3 * kvWidth), query.baseAddress!, count: hd)
                    for i in 0..<4 { w[t + i] = dots[i] * scale }
                    t += 4
                }
                for t in t..<visible {
                    w[t] = HalfDot.dot(keys + t * kvWidth + kvHead * hd, query.baseAddress!, count: hd,
                                      paddedCount: hd, order: order) * scale
                }
                for t in visible..<padded { w[t] = -.infinity }
                LayerMath.softmax(w.baseAddress!, count: padded)
            }
        }
        // Weighted sum of values: per output dimension a dot over positions (fp16 weights).
        for t in 0..<visible { scratch.weights[t] = roundedThroughHalf(scratch.weights[t]) }
        // A batch takes four dimensions per pass over the weights and reads whole vectors past `visible`
        // (the softmax left zeros there up to `padded`; the cache has a tail after its last row).
        scratch.weights.withUnsafeBufferPointer { p in
            var j = 0
            if order == .tiled {
                let whole = (visible + 15) / 16 * 16
                while j + 4 <= hd {
                    let row = values + (kvHead * hd + j) * valueStride
                    let dots = HalfDot.tiledDots4((row, row + valueStride, row + 2 * valueStride, row + 3 * valueStride),
                                                  p.baseAddress!, count: whole)
                    for i in 0..<4 { o[j + i] = dots[i] }
                    j += 4
                }
            }
            for j in j..<hd {
                o[j] = HalfDot.dot(values + (kvHead * hd + j) * valueStride, p.baseAddress!, count: visible,
                                   paddedCount: Self.kvPadding(visible), order: order)
            }
        }
    }
}

/// A pointer handed to concurrent workers that only read it or write disjoint parts of it.
struct Shared<T>: @unchecked Sendable {
    let pointer: T
    init(_ pointer: T) { self.pointer = pointer }
}
