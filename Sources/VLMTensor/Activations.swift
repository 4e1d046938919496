import Foundation

/// The MLP nonlinearities used by CLIP's transformers.
public enum Activation: Sendable, Equatable {
    /// x · σ(1.702 x), the approximation OpenAI's CLIP was trained with.
    case quickGELU
    /// The exact GELU, x · Φ(x) = 0.5 x (1 + erf(x / √2)) (PyTorch's nn.GELU default).
    case gelu
    /// GELU's tanh approximation, 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))): ggml_gelu, and
    /// PyTorch's nn.GELU(approximate="tanh").
    case geluTanh
    /// ggml's CPU GELU (GGML_GELU_FP16): the tanh form tabulated at every fp16 input and stored as fp16,
    /// looked up at the input rounded to fp16 (identity above 10, zero below -10). llama.cpp's mmproj
    /// towers run it; reproducing it keeps their activations exact rather than within fp16 of them.
    case geluTanhHalfTable
    /// ggml's CPU quick GELU (GGML_GELU_QUICK_FP16), tabulated the same way: x·σ(1.702x) at the input
    /// rounded to fp16, stored as fp16 (Qwen2-VL's tower runs it).
    case quickGELUHalfTable
    /// x · σ(x) as ggml computes it (`ggmlSiLU`; Qwen2.5-VL's tower gates its MLP with it).
    case silu

    public func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .quickGELU:
            for i in 0..<count { let v = x[i]; x[i] = v / (1 + expf(-1.702 * v)) }
        case .gelu:
            let invSqrt2: Float = 0.70710678118654752
            for i in 0..<count { let v = x[i]; x[i] = 0.5 * v * (1 + erff(v * invSqrt2)) }
        case .geluTanh:
            let sqrt2OverPi: Float = 0.7978845608028654
            for i in 0..<count { let v = x[i]; x[i] = 0.5 * v * (1 + tanhf(sqrt2OverPi * (v + 0.044715 * v * v * v))) }
        case .geluTanhHalfTable:
            for i in 0..<count {
                let v = x[i]
                if v <= -10 { x[i] = 0 } else if v < 10 { x[i] = Self.halfGELU(Float(Float16(v))) }
            }
        case .silu:
            for i in 0..<count { x[i] = ggmlSiLU(x[i]) }
        case .quickGELUHalfTable:
            for i in 0..<count {
                let h = Float(Float16(x[i]))
                x[i] = Float(Float16(h * (1 / (1 + expf(-1.702 * h)))))
            }
        }
    }

    /// ggml_gelu_f32 (its operand order) at an fp16 input, rounded to fp16 as ggml's table stores it.
    @inline(__always) private static func halfGELU(_ h: Float) -> Float {
        let sqrt2OverPi: Float = 0.79788456080286535587989211986876, a: Float = 0.044715
        return Float(Float16(0.5 * h * (1 + tanhf(sqrt2OverPi * h * (1 + a * h * h)))))
    }

    /// Applies the activation in place, split across the context's threads (erf is not cheap).
    public func callAsFunction(_ x: inout [Float], compute: ComputeContext) {
        x.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            compute.parallelFor(buffer.count, minimumPartSize: 4096) { range in
                apply(base + range.lowerBound, count: range.count)
            }
        }
    }
}

/// max(x, 0) in place.
public func relu(_ x: inout [Float]) {
    x.withUnsafeMutableBufferPointer { p in
        for i in p.indices where p[i] < 0 { p[i] = 0 }
    }
}

/// Numerically stable softmax of one row in place (subtracts the row maximum; −∞ entries become 0).
public func softmaxInPlace(_ row: UnsafeMutablePointer<Float>, count: Int) {
    var maximum = -Float.infinity
    for i in 0..<count { maximum = max(maximum, row[i]) }
    var sum: Float = 0
    for i in 0..<count { let e = expf(row[i] - maximum); row[i] = e; sum += e }
    let inverse = 1 / sum
    for i in 0..<count { row[i] *= inverse }
}
