// Dot products against the fp16 KV cache, in the summation orders of llama.cpp's CPU attention.
#if arch(x86_64) && canImport(_Builtin_intrinsics.intel) && !VLM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel
#endif
import VLMTensor

/// Dot products of fp16-rounded values `a` (cache) with fp16-rounded Floats `b`, summed
/// in one of the two orders llama.cpp's CPU backend uses. Elements past `count` count as zero (the
/// KV length llama.cpp pads to), which leaves every partial sum unchanged.
enum HalfDot {
    enum Order {
        /// llamafile tinyBLAS (batches): 16 FMA lanes over the whole length, then the AVX-512 reduction.
        case tiled
        /// `ggml_vec_dot_f16` (single tokens): four 16-lane accumulators per 64 elements, combined
        /// (0+2)+(1+3), then the AVX-512 reduction.
        case vector
    }

    /// `count` values, in a product llama.cpp runs over `paddedCount` (>= count) elements.
    /// Inlined: attention calls it once per position and per value dimension, mostly with short lengths.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float16>, _ b: UnsafePointer<Float>, count: Int,
                    paddedCount: Int, order: Order) -> Float {
        // tinyBLAS only takes lengths in whole 16-lane vectors; anything else goes to ggml_vec_dot_f16.
        if order == .tiled && paddedCount % 16 == 0 {
            var lanes = SIMD16<Float>()
            var chunk = 0
            while chunk + 16 <= count {
                lanes = lanes.addingProduct(widen(a + chunk), UnsafeRawPointer(b + chunk).loadUnaligned(as: SIMD16<Float>.self))
                chunk += 16
            }
            if chunk < count { lanes = lanes.addingProduct(load16(a, chunk, count), load16(b, chunk, count)) }
            return horizontalSum16(lanes)
        }
        // ggml_vec_dot_f16: whole 64-element steps in four accumulators, the tail as exact products in Double.
        let vectorPart = min(count, paddedCount / 64 * 64)
        var acc = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
        var chunk = 0
        while chunk + 64 <= vectorPart {
            acc.0 = acc.0.addingProduct(widen(a + chunk), UnsafeRawPointer(b + chunk).loadUnaligned(as: SIMD16<Float>.self))
            acc.1 = acc.1.addingProduct(widen(a + chunk + 16), UnsafeRawPointer(b + chunk + 16).loadUnaligned(as: SIMD16<Float>.self))
            acc.2 = acc.2.addingProduct(widen(a + chunk + 32), UnsafeRawPointer(b + chunk + 32).loadUnaligned(as: SIMD16<Float>.self))
            acc.3 = acc.3.addingProduct(widen(a + chunk + 48), UnsafeRawPointer(b + chunk + 48).loadUnaligned(as: SIMD16<Float>.self))
            chunk += 64
        }
        // A last, partial step: lanes past `vectorPart` are zero, whole vectors past it are skipped.
        if chunk < vectorPart {
            acc.0 = acc.0.addingProduct(load16(a, chunk, vectorPart), load16(b, chunk, vectorPart))
            if chunk + 16 < vectorPart { acc.1 = acc.1.addingProduct(load16(a, chunk + 16, vectorPart), load16(b, chunk + 16, vectorPart)) }
            if chunk + 32 < vectorPart { acc.2 = acc.2.addingProduct(load16(a, chunk + 32, vectorPart), load16(b, chunk + 32, vectorPart)) }
            if chunk + 48 < vectorPart { acc.3 = acc.3.addingProduct(load16(a, chunk + 48, vectorPart), load16(b, chunk + 48, vectorPart)) }
        }
        var sum = paddedCount >= 64 ? Double(horizontalSum16((acc.0 + acc.2) + (acc.1 + acc.3))) : 0
        for i in vectorPart..<count { sum += Double(Float(a[i]) * b[i]) }
        return Float(sum)
    }

    /// Four `.tiled` dots sharing `b`: `a.i . b` over `count` values, a multiple of 16 (whole vectors only).
    /// A caller may round a shorter length up to whole vectors when `b` is exactly zero past it and the
    /// `a` rows are readable (and finite) that far: the extra products are exact zeros, which leave every
    /// lane as it was (a lane summed from +0 is never -0), so each result is `dot(.tiled)`'s bit for bit.
    @inline(__always)
    static func tiledDots4(_ a: (UnsafePointer<Float16>, UnsafePointer<Float16>, UnsafePointer<Float16>, UnsafePointer<Float16>),
                           _ b: UnsafePointer<Float>, count: Int) -> SIMD4<Float> {
        var l0 = SIMD16<Float>(), l1 = l0, l2 = l0, l3 = l0
        for chunk in stride(from: 0, to: count, by: 16) {
            let v = UnsafeRawPointer(b + chunk).loadUnaligned(as: SIMD16<Float>.self)
            l0 = l0.addingProduct(widen(a.0 + chunk), v); l1 = l1.addingProduct(widen(a.1 + chunk), v)
            l2 = l2.addingProduct(widen(a.2 + chunk), v); l3 = l3.addingProduct(widen(a.3 + chunk), v)
        }
        return SIMD4(horizontalSum16(l0), horizontalSum16(l1), horizontalSum16(l2), horizontalSum16(l3))
    }

    /// Sixteen values from `start`, zero past `count` (llama.cpp's masked/padded cells weigh exactly zero).
    @inline(__always)
    private static func load16(_ p: UnsafePointer<Float>, _ start: Int, _ count: Int) -> SIMD16<Float> {
        start + 16 <= count ? UnsafeRawPointer(p + start).loadUnaligned(as: SIMD16<Float>.self) : partial16(p + start, count - start)
    }

    /// The first `count` (< 16) of sixteen values, the rest zero; kept out of line (a stack buffer).
    @inline(never)
    private static func partial16(_ p: UnsafePointer<Float>, _ count: Int) -> SIMD16<Float> {
        var v = SIMD16<Float>()
        withUnsafeMutableBytes(of: &v) {
            $0.copyMemory(from: UnsafeRawBufferPointer(start: p, count: max(0, count) * MemoryLayout<Float>.size))
        }
        return v
    }

    /// The same from the fp16 cache, widened exactly to Float.
    @inline(__always)
    private static func load16(_ p: UnsafePointer<Float16>, _ start: Int, _ count: Int) -> SIMD16<Float> {
        start + 16 <= count ? widen(p + start) : partial16(p + start, count - start)
    }

    @inline(never)
    private static func partial16(_ p: UnsafePointer<Float16>, _ count: Int) -> SIMD16<Float> {
        var bits = SIMD16<UInt16>()  // +0.0 in fp16
        withUnsafeMutableBytes(of: &bits) {
            $0.copyMemory(from: UnsafeRawBufferPointer(start: p, count: max(0, count) * MemoryLayout<UInt16>.size))
        }
        return withUnsafeBytes(of: &bits) { widen($0.baseAddress!.assumingMemoryBound(to: Float16.self)) }
    }

    /// Sixteen fp16 values widened exactly to Float (two F16C `vcvtph2ps` on x86).
    @inline(__always)
    private static func widen(_ p: UnsafePointer<Float16>) -> SIMD16<Float> {
        #if arch(x86_64) && canImport(_Builtin_intrinsics.intel) && !VLM_PORTABLE_KERNELS
        let raw = UnsafeRawPointer(p)
        let low = _mm256_cvtph_ps(_mm_loadu_si128(raw.assumingMemoryBound(to: __m128i.self)))
        let high = _mm256_cvtph_ps(_mm_loadu_si128((raw + 16).assumingMemoryBound(to: __m128i.self)))
        return SIMD16(lowHalf: unsafeBitCast(low, to: SIMD8<Float>.self), highHalf: unsafeBitCast(high, to: SIMD8<Float>.self))
        #else
        return SIMD16<Float>(UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float16>.self))
        #endif
    }
}
