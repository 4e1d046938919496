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
    /// with the power built by repeated multiplication in Float as ggml does, divided by the pair's
    /// frequency factor when the model has them (Llama 3), then scaled by `frequencyScale`.
    static func ropeAngles(position: Int, dimensions: Int, base: Float, frequencyScale: Float,
                           frequencyFactors: [Float]? = nil) -> [(cos: Float, sin: Float)] {
        let thetaScale = powf(base, -2 / Float(dimensions))
        var theta = Float(position)
        var angles: [(cos: Float, sin: Float)] = []
        angles.reserveCapacity(dimensions / 2)
        for i in 0..<dimensions / 2 {
            let t = frequencyScale * (theta / (frequencyFactors?[i] ?? 1))
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
        // The largest value (NaNs ignored, as `max` would).
        var lanes = SIMD16<Float>(repeating: -.infinity)
        for i in stride(from: 0, to: count, by: 16) {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            lanes.replace(with: v, where: v .> lanes)
        }
        let maximum = lanes.max()
        var sum: Double = 0
        for i in stride(from: 0, to: count, by: 16) {
            let chunk = ggmlExp(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - SIMD16(repeating: maximum))
            UnsafeMutableRawPointer(x + i).storeBytes(of: chunk, as: SIMD16<Float>.self)
            sum += Double(horizontalSum16(chunk))
        }
        let inverse = Float(1 / sum)
        for i in 0..<count { x[i] *= inverse }
    }

    /// GeGLU: gelu_tanh(gate) * up, written into `gate`, as ggml's `ggml_vec_geglu_f32` (GGML_GELU_FP16):
    /// gelu looked up by the gate's fp16 value, 0 at or below -10, the identity at or above 10.
    static func geglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        geluTable.withUnsafeBufferPointer { table in
            for i in 0..<count {
                let x = gate[i]
                if x <= -10 { gate[i] = 0 }
                else if x >= 10 { gate[i] = x * up[i] }
                else { gate[i] = Float(table[Int(Float16(x).bitPattern)]) * up[i] }
            }
        }
    }

    /// ggml's `ggml_table_gelu_f16`: gelu_tanh of every fp16 value, rounded to fp16.
    static let geluTable: [Float16] = (0..<65536).map { Float16(geluTanh(Float(Float16(bitPattern: UInt16($0))))) }

    /// `ggml_gelu_f32`: 0.5x(1 + tanh(√(2/π) x (1 + 0.044715 x²))), the inner `1 + a·x·x` fused as GCC
    /// contracts it in ggml's build.
    static func geluTanh(_ x: Float) -> Float {
        let sqrt2OverPi: Float = 0.79788456080286535587989211986876, a: Float = 0.044715
        return 0.5 * x * (1 + tanhf(sqrt2OverPi * x * fusedMultiplyAdd(a * x, x, 1)))
    }

    /// Final-logit soft-capping: cap · tanh(logit / cap), as three ggml ops (scale, tanh, scale).
    static func softcap(_ logits: inout [Float], cap: Float) {
        let inverse = 1 / cap
        for i in 0..<logits.count { logits[i] = tanhf(logits[i] * inverse) * cap }
    }

    /// SwiGLU: silu(gate) * up, written into `gate`.
    static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        let whole = count / 16 * 16
        for i in stride(from: 0, to: whole, by: 16) {
            let g = UnsafeRawPointer(gate + i).loadUnaligned(as: SIMD16<Float>.self)
            let u = UnsafeRawPointer(up + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(gate + i).storeBytes(of: ggmlSiLU(g) * u, as: SIMD16<Float>.self)
        }
        for i in whole..<count { gate[i] = ggmlSiLU(gate[i]) * up[i] }
    }
}
