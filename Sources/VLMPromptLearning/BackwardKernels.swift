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
        }
    }
}

/// Multi-head self-attention with the attention probabilities kept for the backward pass.
struct AttentionTape {
    var qkv: [Float]  // [rows, 3·width]: q | k | v
    var probabilities: [Float]  // [batch, heads, sequence, sequence], zero above the diagonal when causal
}

extension MultiHeadAttention {
    /// Causal self-attention over `batch` sequences ([batch · sequence, width] in and out), the same
    /// computation as `apply`, but keeping q, k, v and the softmax probabilities.
    func forward(_ x: [Float], batch: Int, sequence: Int) -> (output: [Float], tape: AttentionTape) {
        let (width, rows, headDim, s) = (self.width, batch * sequence, self.width / heads, sequence)
        let qkv = inProjection(x, rows: rows)
        var probabilities = [Float](repeating: 0, count: batch * heads * s * s)
        var mixed = [Float](repeating: 0, count: rows * width)
        let scale = 1 / Float(headDim).squareRoot()
        qkv.withUnsafeBufferPointer { qkv in
            probabilities.withUnsafeMutableBufferPointer { p in
                mixed.withUnsafeMutableBufferPointer { out in
                    for b in 0..<batch {
                        let base = qkv.baseAddress! + b * s * 3 * width
                        for h in 0..<heads {
                            let scores = p.baseAddress! + (b * heads + h) * s * s
                            let offset = h * headDim
                            MatrixMultiply.gemm(transposeB: true, m: s, n: s, k: headDim, alpha: scale,
                                                a: base + offset, lda: 3 * width, b: base + width + offset, ldb: 3 * width,
                                                c: scores, ldc: s)
                            for q in 0..<s {
                                let row = scores + q * s
                                if q + 1 < s { (row + q + 1).update(repeating: -.infinity, count: s - q - 1) }
                                softmaxInPlace(row, count: s)
                            }
                            MatrixMultiply.gemm(m: s, n: headDim, k: s, a: scores, lda: s,
                                                b: base + 2 * width + offset, ldb: 3 * width,
                                                c: out.baseAddress! + b * s * width + offset, ldc: width)
                        }
                    }
                }
            }
        }
        return (outProjection(mixed, rows: rows), AttentionTape(qkv: qkv, probabilities: probabilities))
    }

    /// dL/dx from dL/d(output). Per head, with O = P·V and P = softmax(scale·Q·Kᵀ + mask):
    /// dP = dO·Vᵀ, dV = Pᵀ·dO, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = scale·dS·K, dK = scale·dSᵀ·Q.
    /// Masked entries have P = 0, so they get no gradient.
    func backward(_ outputGradient: [Float], tape: AttentionTape, batch: Int, sequence: Int) -> [Float] {
        let (width, rows, headDim, s) = (self.width, batch * sequence, self.width / heads, sequence)
        let mixedGradient = outProjection.inputGradient(outputGradient, rows: rows)
        var qkvGradient = [Float](repeating: 0, count: rows * 3 * width)
        var scoreGradient = [Float](repeating: 0, count: s * s)
        let scale = 1 / Float(headDim).squareRoot()
        tape.qkv.withUnsafeBufferPointer { qkv in
            tape.probabilities.withUnsafeBufferPointer { p in
                mixedGradient.withUnsafeBufferPointer { dOut in
                    qkvGradient.withUnsafeMutableBufferPointer { dqkv in
                        scoreGradient.withUnsafeMutableBufferPointer { dS in
                            for b in 0..<batch {
                                let base = qkv.baseAddress! + b * s * 3 * width
                                let dBase = dqkv.baseAddress! + b * s * 3 * width
                                for h in 0..<heads {
                                    let offset = h * headDim
                                    let probs = p.baseAddress! + (b * heads + h) * s * s
                                    let dO = dOut.baseAddress! + b * s * width + offset
                                    // dP = dO · Vᵀ
                                    MatrixMultiply.gemm(transposeB: true, m: s, n: s, k: headDim, a: dO, lda: width,
                                                        b: base + 2 * width + offset, ldb: 3 * width, c: dS.baseAddress!, ldc: s)
                                    // dV = Pᵀ · dO
                                    MatrixMultiply.gemm(transposeA: true, m: s, n: headDim, k: s, a: probs, lda: s,
                                                        b: dO, ldb: width, c: dBase + 2 * width + offset, ldc: 3 * width)
                                    // softmax backward, row by row
                                    for q in 0..<s {
                                        var rowDot: Float = 0
                                        for k in 0...q { rowDot += dS[q * s + k] * probs[q * s + k] }
                                        for k in 0..<s { dS[q * s + k] = probs[q * s + k] * (dS[q * s + k] - rowDot) }
                                    }
                                    // dQ = scale · dS · K,  dK = scale · dSᵀ · Q
                                    MatrixMultiply.gemm(m: s, n: headDim, k: s, alpha: scale, a: dS.baseAddress!, lda: s,
                                                        b: base + width + offset, ldb: 3 * width, c: dBase + offset, ldc: 3 * width)
                                    MatrixMultiply.gemm(transposeA: true, m: s, n: headDim, k: s, alpha: scale,
                                                        a: dS.baseAddress!, lda: s, b: base + offset, ldb: 3 * width,
                                                        c: dBase + width + offset, ldc: 3 * width)
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
