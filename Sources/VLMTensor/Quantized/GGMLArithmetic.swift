// Floating-point operations in the exact order and rounding llama.cpp's CPU backend uses.
//
// Why: quantised matrix products re-quantise every activation vector to 8 bits. A one-ulp difference
// upstream can flip a rounding there, and the flips cascade through the layers until greedy decoding
// picks a different token. Matching llama.cpp token for token therefore needs bit-identical floats:
// the same fused multiply-adds, the same SIMD-lane partial sums and reduction trees, the same exp.
// The orders below are those of ggml's AVX2/AVX-512 kernels (x86-64, the reference's build).

/// a*b + c rounded once, as an FMA instruction computes it. Compiled for a CPU with FMA (e.g.
/// `-Xswiftc -target-cpu -Xswiftc haswell`) this is one instruction; otherwise a call to libm's `fmaf`,
/// which glibc itself dispatches to the FMA instruction when the CPU has one.
@inlinable @inline(__always)
public func fusedMultiplyAdd(_ a: Float, _ b: Float, _ c: Float) -> Float {
    c.addingProduct(a, b)
}

/// `hsum_float_8`: (x0+x4 + x2+x6) + (x1+x5 + x3+x7), as ggml reduces an AVX register.
@inlinable @inline(__always)
public func horizontalSum8(_ x: SIMD8<Float>) -> Float {
    let r = x.highHalf + x.lowHalf
    return (r[0] + r[2]) + (r[1] + r[3])
}

/// `_mm512_reduce_add_ps`: halves of 8, then 4, then pairs (0,2),(1,3), then the two.
@inlinable @inline(__always)
public func horizontalSum16(_ x: SIMD16<Float>) -> Float {
    let h = x.lowHalf + x.highHalf
    let q = h.lowHalf + h.highHalf
    return (q[0] + q[2]) + (q[1] + q[3])
}

/// ggml's vectorised expf (`ggml_v_expf`, from ARM's optimized-routines): a degree-5 polynomial on
/// the reduced argument, scaled by 2^n. Within ~1.5 ulp of expf, and what llama.cpp's softmax and
/// SiLU use; written here lane by lane.
@inlinable @inline(__always)
public func ggmlExp(_ x: Float) -> Float {
    let shift: Float = 0x1.8p23
    let z = fusedMultiplyAdd(x, 0x1.715476p+0, shift)
    let n = z - shift
    let b = fusedMultiplyAdd(-n, 0x1.7f7d1cp-20, fusedMultiplyAdd(-n, 0x1.62e4p-1, x))
    let u = b * b
    let j = fusedMultiplyAdd(
        fusedMultiplyAdd(fusedMultiplyAdd(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, fusedMultiplyAdd(0x1.555e66p-3, b, 0x1.fffdb6p-2)),
        u, fusedMultiplyAdd(0x1.ffffecp-1, b, 1))
    guard n.isFinite else { return n > 0 ? .infinity : (n.isNaN ? .nan : 0) }
    // scalef(j, n) = j * 2^n, rounded once.
    let exponent = Int(max(-400, min(400, n)))
    return Float(Double(j) * Double(sign: .plus, exponent: exponent, significand: 1))
}

/// `ggml_v_silu`: x / (1 + exp(-x)).
@inlinable @inline(__always)
public func ggmlSiLU(_ x: Float) -> Float { x / (1 + ggmlExp(0 - x)) }

/// `ggmlExp` of sixteen lanes at once, bit-identical lane by lane. Where 2^n is a normal Float it is
/// built from exponent bits (the low bits of z hold n), and j·2^n then rounds once as scalef does;
/// the other lanes (arguments below about -87, ±infinity, NaN) take the scalar path.
@inlinable @inline(__always)
public func ggmlExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
    typealias V = SIMD16<Float>
    @inline(__always) func fma(_ a: V, _ b: V, _ c: V) -> V { c.addingProduct(a, b) }
    let shift = V(repeating: 0x1.8p23)
    let z = fma(x, V(repeating: 0x1.715476p+0), shift)
    let n = z - shift
    let b = fma(-n, V(repeating: 0x1.7f7d1cp-20), fma(-n, V(repeating: 0x1.62e4p-1), x))
    let u = b * b
    let j = fma(
        fma(fma(V(repeating: 0x1.0e4020p-7), b, V(repeating: 0x1.573e2ep-5)), u,
            fma(V(repeating: 0x1.555e66p-3), b, V(repeating: 0x1.fffdb6p-2))),
        u, fma(V(repeating: 0x1.ffffecp-1), b, V(repeating: 1)))
    let scale = unsafeBitCast((unsafeBitCast(z, to: SIMD16<UInt32>.self) &<< 23) &+ SIMD16<UInt32>(repeating: 0x3F80_0000),
                              to: V.self)
    let result = j * scale
    // exp(-inf) = 0 (masked attention scores) is common enough to keep out of the scalar path.
    let zero = x .== V(repeating: -.infinity)
    let normal = (n .>= V(repeating: -126)) .& (n .<= V(repeating: 127))
    return all(normal .| zero) ? result.replacing(with: 0, where: zero) : ggmlExpLanes(x, result, normal: normal)
}

/// The lanes of `ggmlExp(x)` that are not `normal` from the scalar function.
@usableFromInline @inline(never)
func ggmlExpLanes(_ x: SIMD16<Float>, _ result: SIMD16<Float>, normal: SIMDMask<SIMD16<Int32>>) -> SIMD16<Float> {
    var result = result
    for lane in 0..<16 where !normal[lane] { result[lane] = ggmlExp(x[lane]) }
    return result
}

/// `ggml_v_silu` of sixteen lanes: x / (1 + exp(-x)), lane by lane as the scalar one.
@inlinable @inline(__always)
public func ggmlSiLU(_ x: SIMD16<Float>) -> SIMD16<Float> { x / (1 + ggmlExp(SIMD16<Float>() - x)) }
