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
            let whole = count - count % 8
            for i in stride(from: 0, to: whole, by: 8) { storeVector8(Self.quickGELU(loadVector8(x + i)), x + i) }
            for i in whole..<count { let v = x[i]; x[i] = v / (1 + expf(-1.702 * v)) }
        case .gelu:
            let invSqrt2: Float = 0.70710678118654752
            let whole = count - count % 8
            for i in stride(from: 0, to: whole, by: 8) { storeVector8(Self.gelu(loadVector8(x + i)), x + i) }
            for i in whole..<count { let v = x[i]; x[i] = 0.5 * v * (1 + erff(v * invSqrt2)) }
        case .geluTanh:
            let sqrt2OverPi: Float = 0.7978845608028654
            for i in 0..<count { let v = x[i]; x[i] = 0.5 * v * (1 + tanhf(sqrt2OverPi * (v + 0.044715 * v * v * v))) }
        case .geluTanhHalfTable:
            halfGELUTable.withUnsafeBufferPointer { table in
                for i in 0..<count {
                    let v = x[i]
                    if v <= -10 { x[i] = 0 } else if v < 10 { x[i] = table[Int(Float16(v).bitPattern)] }
                }
            }
        case .silu:
            for i in 0..<count { x[i] = ggmlSiLU(x[i]) }
        case .quickGELUHalfTable:
            halfQuickGELUTable.withUnsafeBufferPointer { table in
                for i in 0..<count { x[i] = table[Int(Float16(x[i]).bitPattern)] }
            }
        }
    }

    /// x · σ(1.702 x), eight at a time.
    @inline(__always) private static func quickGELU(_ v: SIMD8<Float>) -> SIMD8<Float> {
        v / (1 + vectorExp(-1.702 * v))
    }

    /// 0.5 x (1 + erf(x / √2)), eight at a time, with erf from Abramowitz & Stegun 7.1.26 (absolute
    /// error ≤ 1.5e-7): the form PyTorch's vectorised CPU GELU evaluates, so it also tracks open_clip.
    @inline(__always) private static func gelu(_ v: SIMD8<Float>) -> SIMD8<Float> {
        let z = v * 0.70710678118654752
        let negative = z .< 0
        let magnitude = z.replacing(with: -z, where: negative)
        let t = 1 / SIMD8<Float>(repeating: 1).addingProduct(0.3275911, magnitude)
        var poly = SIMD8<Float>(repeating: -1.453152027).addingProduct(1.061405429, t)
        poly = SIMD8<Float>(repeating: 1.421413741).addingProduct(poly, t)
        poly = SIMD8<Float>(repeating: -0.284496736).addingProduct(poly, t)
        poly = SIMD8<Float>(repeating: 0.254829592).addingProduct(poly, t)
        let erfMagnitude = 1 - poly * t * vectorExp(-(z * z))
        let erf = erfMagnitude.replacing(with: -erfMagnitude, where: negative)
        return (v * 0.5) * (erf + 1)
    }

    /// ggml_gelu_f32 (its operand order) at an fp16 input, rounded to fp16 as ggml's table stores it.
    fileprivate static func halfGELU(_ h: Float) -> Float {
        let sqrt2OverPi: Float = 0.79788456080286535587989211986876, a: Float = 0.044715
        return Float(Float16(0.5 * h * (1 + tanhf(sqrt2OverPi * h * (1 + a * h * h)))))
    }

    /// ggml_gelu_quick_f32 at an fp16 input, rounded to fp16.
    fileprivate static func halfQuickGELU(_ h: Float) -> Float { Float(Float16(h * (1 / (1 + expf(-1.702 * h))))) }

    /// Applies the activation in place, split across the context's threads (erf is not cheap). The parts
    /// are whole vectors of 8, so each value takes the same path (vector or scalar tail) however the
    /// array is split: a row's activations do not depend on how many rows came with it.
    public func callAsFunction(_ x: inout [Float], compute: ComputeContext) {
        x.withUnsafeMutableBufferPointer { buffer in
            let (base, count) = (buffer.baseAddress!, buffer.count)
            compute.parallelFor((count + 7) / 8, minimumPartSize: 512) { vectors in
                let start = 8 * vectors.lowerBound
                apply(base + start, count: min(count, 8 * vectors.upperBound) - start)
            }
        }
    }
}

/// The fp16-input activations at every fp16 bit pattern, as ggml tabulates them once (a tower's MLP is
/// tens of millions of values per image, and tanhf/expf per value was ~15 % of a SigLIP encode). Indexed
/// by `Float16(x).bitPattern`, so a lookup is exactly the per-value formula.
private let halfGELUTable: [Float] = (0..<65536).map { Activation.halfGELU(Float(Float16(bitPattern: UInt16($0)))) }
private let halfQuickGELUTable: [Float] = (0..<65536).map { Activation.halfQuickGELU(Float(Float16(bitPattern: UInt16($0)))) }

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

/// eˣ, eight at a time, within ~2 ulp (Cephes' expf: x = n ln 2 + r with |r| ≤ ln 2 / 2, a degree-6
/// polynomial for eʳ, 2ⁿ built in the exponent bits). Inputs are clamped to ±88.3, where float32's
/// range ends, so large negative arguments give ~1e-38 rather than 0.
@inline(__always) func vectorExp(_ x: SIMD8<Float>) -> SIMD8<Float> {
    var x = x.replacing(with: -87.3, where: x .< -87.3)  // (`clamped` is not specialised: a call per vector)
    x.replace(with: 88.3, where: x .> 88.3)
    let n = (x * 1.44269504088896341).rounded(.toNearestOrEven)
    var r = x.addingProduct(n, SIMD8(repeating: -0.693359375))
    r = r.addingProduct(n, SIMD8(repeating: 2.12194440e-4))
    var p = SIMD8<Float>(repeating: 1.3981999507e-3).addingProduct(1.9875691500e-4, r)
    p = SIMD8<Float>(repeating: 8.3334519073e-3).addingProduct(p, r)
    p = SIMD8<Float>(repeating: 4.1665795894e-2).addingProduct(p, r)
    p = SIMD8<Float>(repeating: 1.6666665459e-1).addingProduct(p, r)
    p = SIMD8<Float>(repeating: 5.0000001201e-1).addingProduct(p, r)
    let er = (r + 1).addingProduct(p, r * r)
    // n + 127 lands in the low mantissa bits of n + 1.5·2²³ + 127; shifted into the exponent field it is 2ⁿ.
    let biased = unsafeBitCast(n + 12_583_039, to: SIMD8<UInt32>.self)
    return er * unsafeBitCast(biased &<< 23, to: SIMD8<Float>.self)
}

/// Eight floats from unaligned memory.
@inline(__always) func loadVector8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) func storeVector8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
