import Foundation
import VLMTensor

// Forward passes that keep what their backward pass needs, and the backward passes themselves
// (gradients with respect to the *inputs* only: the CLIP weights are frozen in prompt learning).

/// Layer norm with its intermediate values kept: y = x̂ · γ + β with x̂ = (x − mean) · rstd.
struct LayerNormTape {
    var normalized: [Float]  // x̂, [rows, width]
    var inverseDeviation: [Float]  // rstd, [rows]
}

extension LayerNorm {
    /// Same arithmetic as `LayerNorm.apply` (two-pass variance), returning the output and the tape.
    func forward(_ x: [Float], rows: Int) -> (output: [Float], tape: LayerNormTape) {
        let n = width
        var normalized = [Float](repeating: 0, count: x.count)
        var output = [Float](repeating: 0, count: x.count)
        var inverseDeviation = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            let base = r * n
            var mean: Float = 0
            for i in 0..<n { mean += x[base + i] }
            mean /= Float(n)
            var variance: Float = 0
            for i in 0..<n { let d = x[base + i] - mean; variance += d * d }
            let inverse = 1 / (variance / Float(n) + eps).squareRoot()
            inverseDeviation[r] = inverse
            for i in 0..<n {
                let xhat = (x[base + i] - mean) * inverse
                normalized[base + i] = xhat
                output[base + i] = xhat * weight[i] + bias[i]
            }
        }
        return (output, LayerNormTape(normalized: normalized, inverseDeviation: inverseDeviation))
    }

    /// dL/dx from dL/dy: dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)) with g = dy ⊙ γ.
    func backward(_ outputGradient: [Float], tape: LayerNormTape, rows: Int) -> [Float] {
        let n = width
        var inputGradient = [Float](repeating: 0, count: outputGradient.count)
        for r in 0..<rows {
            let base = r * n
            var meanG: Float = 0, meanGX: Float = 0
            for i in 0..<n {
                let g = outputGradient[base + i] * weight[i]
                meanG += g
                meanGX += g * tape.normalized[base + i]
            }
            meanG /= Float(n)
            meanGX /= Float(n)
            let rstd = tape.inverseDeviation[r]
            for i in 0..<n {
                let g = outputGradient[base + i] * weight[i]
                inputGradient[base + i] = rstd * (g - meanG - tape.normalized[base + i] * meanGX)
            }
        }
        return inputGradient
    }
}

extension Linear {
    /// dL/dx = dL/dy · W for y = x · Wᵀ + b (W is [out, in]).
    func inputGradient(_ outputGradient: [Float], rows: Int) -> [Float] {
        precondition(outputGradient.count == rows * outFeatures)
        var result = [Float](repeating: 0, count: rows * inFeatures)
        outputGradient.withUnsafeBufferPointer { dy in
            weight.withUnsafeBufferPointer { w in
                result.withUnsafeMutableBufferPointer { dx in
                    MatrixMultiply.gemm(m: rows, n: inFeatures, k: outFeatures, a: dy.baseAddress!, lda: outFeatures,
                                        b: w.baseAddress!, ldb: inFeatures, c: dx.baseAddress!, ldc: inFeatures)
                }
            }
        }
        return result
    }
}

extension Activation {
    /// f'(x) for each pre-activation value, multiplied into `gradient` in place.
    func multiplyDerivative(_ gradient: inout [Float], preActivation x: [Float]) {
        precondition(gradient.count == x.count)
        switch self {
        case .quickGELU:
            // f = x·σ(1.702x) → f' = σ + 1.702·x·σ·(1 − σ)
            for i in x.indices {
                let s = 1 / (1 + expf(-1.702 * x[i]))
                gradient[i] *= s + 1.702 * x[i] * s * (1 - s)
            }
        case .gelu:
            // f = x·Φ(x) → f' = Φ(x) + x·φ(x)
            let invSqrt2: Float = 0.70710678118654752, invSqrt2Pi: Float = 0.3989422804014327
            for i in x.indices {
                let v = x[i]
                gradient[i] *= 0.5 * (1 + erff(v * invSqrt2)) + v * invSqrt2Pi * expf(-0.5 * v * v)
            }
        case .geluTanh, .geluTanhHalfTable, .quickGELUHalfTable, .silu:
            preconditionFailure("open_clip text towers use GELU or QuickGELU (CLIPConfig.activation), never the tanh form")
        }
    }
}

/// Which packed rows attend to which. Rows `0..<prefixLength` are a shared prefix (causal among
/// themselves); each segment is a run of rows that attends causally within itself and to the whole
/// prefix. With a shared soft context the prefix is [SOT] ctx_1…ctx_M, identical for every class,
/// so it is computed once instead of once per class (exact: under the causal mask those positions
/// never see the class name). Without a shared prefix (`prefixLength` 0) segments are independent
/// sequences, i.e. an ordinary batch.
struct AttentionSegments: Sendable, Equatable {
    let prefixLength: Int
    let segments: [Range<Int>]

    /// The attention units: the prefix (sees nothing before it) then every segment (sees the prefix).
    var units: [(rows: Range<Int>, visiblePrefix: Int)] {
        (prefixLength > 0 ? [(0..<prefixLength, 0)] : []) + segments.map { ($0, prefixLength) }
    }
}

/// Multi-head self-attention with the attention probabilities kept for the backward pass.
struct AttentionTape {
    var qkv: [Float]  // [rows, 3·width]: q | k | v
    /// Per unit and head: [unit rows, visible prefix + unit rows], zero where masked.
    var probabilities: [Float]
}

extension MultiHeadAttention {
    /// Self-attention over packed rows ([rows, width] in and out) laid out by `segments`; for one
    /// unit of n rows seeing c prefix rows, per head: P = softmax(scale·Q·[K_prefix; K_unit]ᵀ + causal
    /// mask), out = P·[V_prefix; V_unit]. Keeps q, k, v and P.
    func forward(_ x: [Float], rows: Int, segments: AttentionSegments) -> (output: [Float], tape: AttentionTape) {
        let (width, headDim) = (self.width, self.width / heads)
        let qkv = inProjection(x, rows: rows)
        let units = segments.units
        var probabilities = [Float](repeating: 0, count: units.reduce(0) { $0 + heads * $1.rows.count * ($1.visiblePrefix + $1.rows.count) })
        var mixed = [Float](repeating: 0, count: rows * width)
        let scale = 1 / Float(headDim).squareRoot()
        qkv.withUnsafeBufferPointer { qkvBuffer in
            probabilities.withUnsafeMutableBufferPointer { pBuffer in
                mixed.withUnsafeMutableBufferPointer { outBuffer in
                    let qkv = qkvBuffer.baseAddress!, ld = 3 * width
                    var probs = pBuffer.baseAddress!
                    for unit in units {
                        let (a, n, c) = (unit.rows.lowerBound, unit.rows.count, unit.visiblePrefix)
                        let keys = c + n
                        for h in 0..<heads {
                            let off = h * headDim
                            let (q, k, v) = (qkv + a * ld + off, qkv + width + off, qkv + 2 * width + off)
                            // scores = scale · Q_unit · [K_prefix; K_unit]ᵀ, causal within the unit
                            if c > 0 {
                                MatrixMultiply.gemm(transposeB: true, m: n, n: c, k: headDim, alpha: scale,
                                                    a: q, lda: ld, b: k, ldb: ld, c: probs, ldc: keys)
                            }
                            MatrixMultiply.gemm(transposeB: true, m: n, n: n, k: headDim, alpha: scale,
                                                a: q, lda: ld, b: k + a * ld, ldb: ld, c: probs + c, ldc: keys)
                            for i in 0..<n {
                                let row = probs + i * keys
                                if c + i + 1 < keys { (row + c + i + 1).update(repeating: -.infinity, count: keys - c - i - 1) }
                                softmaxInPlace(row, count: keys)
                            }
                            let out = outBuffer.baseAddress! + a * width + off
                            if c > 0 {
                                MatrixMultiply.gemm(m: n, n: headDim, k: c, a: probs, lda: keys, b: v, ldb: ld, c: out, ldc: width)
                            }
                            MatrixMultiply.gemm(m: n, n: headDim, k: n, a: probs + c, lda: keys, b: v + a * ld, ldb: ld,
                                                beta: c > 0 ? 1 : 0, c: out, ldc: width)
                            probs += n * keys
                        }
                    }
                }
            }
        }
        return (outProjection(mixed, rows: rows), AttentionTape(qkv: qkv, probabilities: probabilities))
    }

    /// dL/dx from dL/d(output). Per unit and head, with O = P·V and P = softmax(S):
    /// dP = dO·Vᵀ, dV = Pᵀ·dO, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = scale·dS·K, dK = scale·dSᵀ·Q,
    /// where K and V stack the visible prefix rows over the unit's rows. Prefix rows collect
    /// gradient from every unit that sees them (hence every product accumulates, beta = 1).
    /// Masked entries have P = 0, so they get no gradient.
    func backward(_ outputGradient: [Float], tape: AttentionTape, rows: Int, segments: AttentionSegments) -> [Float] {
        let (width, headDim) = (self.width, self.width / heads)
        let mixedGradient = outProjection.inputGradient(outputGradient, rows: rows)
        var qkvGradient = [Float](repeating: 0, count: rows * 3 * width)
        let units = segments.units
        let widest = units.map { $0.rows.count * ($0.visiblePrefix + $0.rows.count) }.max() ?? 0
        var scoreGradient = [Float](repeating: 0, count: widest)
        let scale = 1 / Float(headDim).squareRoot()
        tape.qkv.withUnsafeBufferPointer { qkvBuffer in
            tape.probabilities.withUnsafeBufferPointer { pBuffer in
                mixedGradient.withUnsafeBufferPointer { dOutBuffer in
                    qkvGradient.withUnsafeMutableBufferPointer { dqkvBuffer in
                        scoreGradient.withUnsafeMutableBufferPointer { dSBuffer in
                            let (qkv, dqkv, dS, ld) = (qkvBuffer.baseAddress!, dqkvBuffer.baseAddress!, dSBuffer.baseAddress!, 3 * width)
                            var probs = pBuffer.baseAddress!
                            for unit in units {
                                let (a, n, c) = (unit.rows.lowerBound, unit.rows.count, unit.visiblePrefix)
                                let keys = c + n
                                for h in 0..<heads {
                                    let off = h * headDim
                                    let (q, k, v) = (qkv + a * ld + off, qkv + width + off, qkv + 2 * width + off)
                                    let (dq, dk, dv) = (dqkv + a * ld + off, dqkv + width + off, dqkv + 2 * width + off)
                                    let dO = dOutBuffer.baseAddress! + a * width + off
                                    // dP = dO · [V_prefix; V_unit]ᵀ ; dV += Pᵀ · dO
                                    if c > 0 {
                                        MatrixMultiply.gemm(transposeB: true, m: n, n: c, k: headDim, a: dO, lda: width,
                                                            b: v, ldb: ld, c: dS, ldc: keys)
                                        MatrixMultiply.gemm(transposeA: true, m: c, n: headDim, k: n, a: probs, lda: keys,
                                                            b: dO, ldb: width, beta: 1, c: dv, ldc: ld)
                                    }
                                    MatrixMultiply.gemm(transposeB: true, m: n, n: n, k: headDim, a: dO, lda: width,
                                                        b: v + a * ld, ldb: ld, c: dS + c, ldc: keys)
                                    MatrixMultiply.gemm(transposeA: true, m: n, n: headDim, k: n, a: probs + c, lda: keys,
                                                        b: dO, ldb: width, beta: 1, c: dv + a * ld, ldc: ld)
                                    // softmax backward, row by row
                                    for i in 0..<n {
                                        var rowDot: Float = 0
                                        for j in 0..<keys { rowDot += dS[i * keys + j] * probs[i * keys + j] }
                                        for j in 0..<keys { dS[i * keys + j] = probs[i * keys + j] * (dS[i * keys + j] - rowDot) }
                                    }
                                    // dQ += scale · dS · [K_prefix; K_unit] ; dK += scale · dSᵀ · Q
                                    if c > 0 {
                                        MatrixMultiply.gemm(m: n, n: headDim, k: c, alpha: scale, a: dS, lda: keys,
                                                            b: k, ldb: ld, beta: 1, c: dq, ldc: ld)
                                        MatrixMultiply.gemm(transposeA: true, m: c, n: headDim, k: n, alpha: scale, a: dS, lda: keys,
                                                            b: q, ldb: ld, beta: 1, c: dk, ldc: ld)
                                    }
                                    MatrixMultiply.gemm(m: n, n: headDim, k: n, alpha: scale, a: dS + c, lda: keys,
                                                        b: k + a * ld, ldb: ld, beta: 1, c: dq, ldc: ld)
                                    MatrixMultiply.gemm(transposeA: true, m: n, n: headDim, k: n, alpha: scale, a: dS + c, lda: keys,
                                                        b: q, ldb: ld, beta: 1, c: dk + a * ld, ldc: ld)
                                    probs += n * keys
                                }
                            }
                        }
                    }
                }
            }
        }
        return inProjection.inputGradient(qkvGradient, rows: rows)
    }
}

/// x += y elementwise.
func addInPlace(_ x: inout [Float], _ y: [Float]) {
    precondition(x.count == y.count)
    for i in x.indices { x[i] += y[i] }
}
