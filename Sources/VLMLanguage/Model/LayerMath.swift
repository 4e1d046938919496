// The element-wise pieces of the decoder block, written to round exactly where ggml rounds
// (see VLMTensor's GGMLArithmetic.swift for why bit-identical floats matter).
import Foundation
import VLMTensor

enum LayerMath {
    /// RMSNorm then the learned gain: y = (x * 1/sqrt(mean(x^2) + eps)) * w. ggml sums squares in double.
    static func rmsNorm(_ x: UnsafePointer<Float>, weight: [Float], epsilon: Float, into y: UnsafeMutablePointer<Float>) {
        let n = weight.count
        var sum: Double = 0
        for i in 0..<n { sum += Double(x[i] * x[i]) }
        let mean = Float(sum / Double(n))
        let scale = 1 / (mean + epsilon).squareRoot()
        for i in 0..<n { y[i] = (x[i] * scale) * weight[i] }
    }

    /// cos/sin of each rotated pair at `position` (ggml_rope_cache_init, no YaRN): theta_i = p * base^(-2i/d),
    /// with the power built by repeated multiplication in Float as ggml does.
    static func ropeAngles(position: Int, dimensions: Int, base: Float, frequencyScale: Float) -> [(cos: Float, sin: Float)] {
        let thetaScale = powf(base, -2 / Float(dimensions))
        var theta = Float(position)
        var angles: [(cos: Float, sin: Float)] = []
        angles.reserveCapacity(dimensions / 2)
        for _ in 0..<dimensions / 2 {
            let t = theta * frequencyScale
            angles.append((cosf(t), sinf(t)))
            theta *= thetaScale
        }
        return angles
    }

    /// Rotates the first `angles.count * 2` values of each head in place.
    static func applyRope(_ x: UnsafeMutablePointer<Float>, heads: Int, headDimension: Int,
                          angles: [(cos: Float, sin: Float)], adjacentPairs: Bool) {
        let half = headDimension / 2
        for h in 0..<heads {
            let v = x + h * headDimension
            for (i, a) in angles.enumerated() {
                let (i0, i1) = adjacentPairs ? (2 * i, 2 * i + 1) : (i, i + half)
                let x0 = v[i0], x1 = v[i1]
                // x0*cos - x1*sin and x0*sin + x1*cos, with the first product fused as the C compiler does.
                v[i0] = fusedMultiplyAdd(x0, a.cos, -(x1 * a.sin))
                v[i1] = fusedMultiplyAdd(x0, a.sin, x1 * a.cos)
            }
        }
    }

    /// In-place softmax over `count` values, as `ggml_vec_soft_max_f32`: exp in chunks of 16 lanes, each
    /// chunk summed by the AVX-512 reduction tree into a Double total. `count` must be a multiple of 16
    /// (pad with -infinity: llama.cpp pads its KV length, and padded entries contribute exact zeros).
    static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        precondition(count % 16 == 0, "softmax expects a count padded to 16 lanes")
        var maximum = -Float.infinity
        for i in 0..<count { maximum = max(maximum, x[i]) }
        var sum: Double = 0
        var i = 0
        while i < count {
            var chunk = SIMD16<Float>()
            for l in 0..<16 {
                chunk[l] = ggmlExp(x[i + l] - maximum)
                x[i + l] = chunk[l]
            }
            sum += Double(horizontalSum16(chunk))
            i += 16
        }
        let inverse = Float(1 / sum)
        for i in 0..<count { x[i] *= inverse }
    }

    /// SwiGLU: silu(gate) * up, written into `gate`.
    static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { gate[i] = ggmlSiLU(gate[i]) * up[i] }
    }
}
