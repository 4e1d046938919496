// Prefill tiles of the 32-value quantised formats with AVX-512 VNNI (`vpdpbusd`), for CPUs that have it.
//
// This module is compiled for Cascade Lake (AVX-512 F/BW/VL + VNNI), the oldest x86-64 CPU with VNNI,
// so the intrinsics inline and the kernels get the 32 vector registers of AVX-512; VLMTensor calls it
// only after cpuid has found those extensions (`VNNITiles.isSupported`). Nothing here is public and
// inlinable, and the entry point is `@inline(never)`, so no code compiled for these extensions is inlined
// into the Haswell-targeted modules. (The only weak symbols the object shares with them are the Swift
// runtime's small copy helpers, which use no AVX-512 instructions: `nm`/`objdump` of VNNITiles.swift.o.)
//
// The arithmetic is ggml's (`ggml_vec_dot_q*_0_q8_0`, llamafile's tinyBLAS), bit for bit: per block of 32,
// eight int32 lanes each hold the exact products of four consecutive values; each lane is converted to
// float and fused-multiply-added, scaled by d_w * d_a, into a float lane accumulator; the eight lanes are
// summed with `hsum_float_8` at the end. `vpdpbusd` multiplies unsigned weight bytes with signed
// activation bytes, so the weights are taken with a bias that makes them unsigned (q4_0: w + 8, q5_0:
// w + 16, q8_0: w + 128) and bias * (the activations' lane sums) is subtracted: the lanes stay exact.
#if arch(x86_64) && canImport(_Builtin_intrinsics.intel)
import _Builtin_intrinsics.intel
import _Builtin_intrinsics.intel.cpuid

public enum VNNITiles {
    /// The 32-value weight formats with a tile here (formats without a block minimum).
    public enum Format: Sendable { case q4_0, q5_0, q8_0 }

    /// Whether this CPU runs the kernels: AVX-512 F/BW/VL and VNNI (cpuid leaf 7), with XSAVE enabled by
    /// the OS (OSXSAVE) for the AVX-512 register state (leaf 0xD: SSE, AVX, opmask, upper ZMM halves,
    /// ZMM16-31). `xgetbv` is a macro Swift cannot import; Linux enables every state the CPU reports.
    public static let isSupported: Bool = {
        var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
        guard __get_cpuid_count(1, 0, &a, &b, &c, &d) != 0, c & (1 << 27) != 0 else { return false }  // OSXSAVE
        guard __get_cpuid_count(0xD, 0, &a, &b, &c, &d) != 0, a & 0xE6 == 0xE6 else { return false }
        guard __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0 else { return false }
        let f = b & (1 << 16) != 0, bw = b & (1 << 30) != 0, vl = b & (1 << 31) != 0, vnni = c & (1 << 11) != 0
        return f && bw && vl && vnni
    }()

    /// Four activation rows quantised as Q8_0: each row's int8 quants (32 per block) and Float scales.
    public struct Activations4 {
        public var quants: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer)
        public var scales: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>)
        public init(quants: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                    scales: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>)) {
            self.quants = quants
            self.scales = scales
        }
    }

    /// Four weight rows (each `blocks` blocks of `format`), as pointers.
    public typealias Rows4 = (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer)

    /// The dot products of four weight rows with four activation rows: `out[4 * r + i]` = row r .
    /// activation i, exactly as `BlockDot.dot` computes each alone. Only call when `isSupported`.
    @inline(never)
    public static func tile4x4(_ format: Format, _ rows: Rows4, blocks: Int, _ a: Activations4,
                               into out: UnsafeMutablePointer<Float>) {
        switch format {
        case .q4_0: tile4x4(Q4_0.self, rows, blocks, a, out)
        case .q5_0: tile4x4(Q5_0.self, rows, blocks, a, out)
        case .q8_0: tile4x4(Q8_0.self, rows, blocks, a, out)
        }
    }

    /// 4 x 4 rather than 2 x 4: an activation block's load and bias correction (its lane sums) are
    /// shared by four weight rows instead of two, which perf showed to be the 2 x 4 tile's largest
    /// cost after the products. Sixteen accumulators, four activations and their four corrections
    /// fit in AVX-512's 32 vector registers.
    private static func tile4x4<F: BiasedBlock>(_: F.Type, _ rows: Rows4, _ blocks: Int, _ a: Activations4,
                                                _ out: UnsafeMutablePointer<Float>) {
        let zero = _mm256_setzero_ps()
        var acc0 = (zero, zero, zero, zero), acc1 = acc0, acc2 = acc0, acc3 = acc0
        for j in 0..<blocks {
            let q = (a.quants.0 + 32 * j, a.quants.1 + 32 * j, a.quants.2 + 32 * j, a.quants.3 + 32 * j)
            let x = (load(q.0), load(q.1), load(q.2), load(q.3))
            let c = (F.correction(x.0), F.correction(x.1), F.correction(x.2), F.correction(x.3))
            let da = (_mm256_set1_ps(a.scales.0[j]), _mm256_set1_ps(a.scales.1[j]),
                      _mm256_set1_ps(a.scales.2[j]), _mm256_set1_ps(a.scales.3[j]))
            accumulateRow(&acc0, F.self, rows.0 + j * F.bytes, x, c, da)
            accumulateRow(&acc1, F.self, rows.1 + j * F.bytes, x, c, da)
            accumulateRow(&acc2, F.self, rows.2 + j * F.bytes, x, c, da)
            accumulateRow(&acc3, F.self, rows.3 + j * F.bytes, x, c, da)
        }
        store(acc0, out); store(acc1, out + 4); store(acc2, out + 8); store(acc3, out + 12)
    }

    @inline(__always)
    private static func store(_ acc: Four<__m256>, _ out: UnsafeMutablePointer<Float>) {
        out[0] = hsum8(acc.0); out[1] = hsum8(acc.1); out[2] = hsum8(acc.2); out[3] = hsum8(acc.3)
    }

    private typealias Four<T> = (T, T, T, T)

    /// One weight block against the four activation blocks: acc.i += (d_w * d_a,i) * (exact lanes).
    @inline(__always)
    private static func accumulateRow<F: BiasedBlock>(_ acc: inout Four<__m256>, _: F.Type, _ block: UnsafeRawPointer,
                                                      _ x: Four<__m256i>, _ c: Four<__m256i>, _ da: Four<__m256>) {
        let w = F.biasedWeights(block), d = _mm256_set1_ps(F.scale(block))
        acc.0 = accumulate(acc.0, _mm256_mul_ps(d, da.0), c.0, w, x.0)
        acc.1 = accumulate(acc.1, _mm256_mul_ps(d, da.1), c.1, w, x.1)
        acc.2 = accumulate(acc.2, _mm256_mul_ps(d, da.2), c.2, w, x.2)
        acc.3 = accumulate(acc.3, _mm256_mul_ps(d, da.3), c.3, w, x.3)
    }

    /// acc + scale * lanes, lanes = (the biased products) - correction, exact int32 per lane.
    @inline(__always)
    private static func accumulate(_ acc: __m256, _ scale: __m256, _ correction: __m256i, _ w: __m256i, _ x: __m256i) -> __m256 {
        _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dpbusd(correction, w, x)), acc)
    }

    @inline(__always)
    private static func load(_ p: UnsafeRawPointer) -> __m256i { _mm256_loadu_si256(p.assumingMemoryBound(to: __m256i.self)) }

    /// `hsum_float_8`: (x0+x4 + x2+x6) + (x1+x5 + x3+x7).
    @inline(__always)
    private static func hsum8(_ x: __m256) -> Float {
        let r = x.highHalf + x.lowHalf  // __m256 is SIMD8<Float> in Swift
        return (r[0] + r[2]) + (r[1] + r[3])
    }
}

/// A 32-value block whose weights w are unpacked as the unsigned bytes w + bias.
private protocol BiasedBlock {
    static var bytes: Int { get }
    /// log2 of the bias.
    static var biasShift: Int32 { get }
    static func biasedWeights(_ block: UnsafeRawPointer) -> __m256i
}

extension BiasedBlock {
    /// The block's fp16 scale d.
    @inline(__always)
    static func scale(_ block: UnsafeRawPointer) -> Float {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(Int32(block.loadUnaligned(as: UInt16.self)))))
    }

    /// -(bias * the sum of each lane's four activations): the start value that makes the biased
    /// products exact (`vpdpbusd` of all-ones bytes gives the lane sums).
    @inline(__always)
    static func correction(_ x: __m256i) -> __m256i {
        let sums = dpbusd(_mm256_setzero_si256(), _mm256_set1_epi8(1), x)
        return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sums, biasShift))
    }
}

/// `vpdpbusd`: lane k of s plus the four products of unsigned bytes 4k..<4k+4 of u with the signed
/// bytes of x. (`_mm256_dpbusd_epi32` is a macro Swift cannot import; all-ones masking compiles to it.)
@inline(__always)
private func dpbusd(_ s: __m256i, _ u: __m256i, _ x: __m256i) -> __m256i { _mm256_mask_dpbusd_epi32(s, 0xFF, u, x) }

/// Low nibbles of 16 bytes, then their high nibbles (`bytes_from_nibbles_32`).
@inline(__always)
private func nibbles(_ p: UnsafeRawPointer) -> __m256i {
    let packed = _mm_loadu_si128(p.assumingMemoryBound(to: __m128i.self))
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0F))
}

private enum Q4_0: BiasedBlock {
    static var bytes: Int { 18 }
    static var biasShift: Int32 { 3 }
    @inline(__always) static func biasedWeights(_ block: UnsafeRawPointer) -> __m256i { nibbles(block + 2) }
}

private enum Q5_0: BiasedBlock {
    static var bytes: Int { 22 }
    static var biasShift: Int32 { 4 }
    /// Nibbles plus the fifth bit of element i from bit i of the 32-bit `qh` (an AVX-512 mask move).
    @inline(__always) static func biasedWeights(_ block: UnsafeRawPointer) -> __m256i {
        let high = _mm256_maskz_mov_epi8(block.loadUnaligned(fromByteOffset: 2, as: UInt32.self), _mm256_set1_epi8(0x10))
        return _mm256_or_si256(nibbles(block + 6), high)
    }
}

private enum Q8_0: BiasedBlock {
    static var bytes: Int { 34 }
    static var biasShift: Int32 { 7 }
    /// w + 128 as a byte is w with its sign bit flipped.
    @inline(__always) static func biasedWeights(_ block: UnsafeRawPointer) -> __m256i {
        _mm256_xor_si256(_mm256_loadu_si256((block + 2).assumingMemoryBound(to: __m256i.self)), _mm256_set1_epi8(-128))
    }
}
#endif
