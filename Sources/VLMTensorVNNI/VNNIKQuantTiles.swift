// Prefill tiles of the K-quant formats (256-value super-blocks against Q8_K activations) with AVX-512
// VNNI, 4 weight rows x 4 tokens, for CPUs that have it (see VNNITiles.swift for the module's rules).
//
// K-quant weights are small unsigned integers (q4_K's nibbles; q6_K's 6-bit values, stored as q + 32),
// so `vpdpbusd` multiplies them with the signed activation bytes directly, no bias needed. Each lane
// of its result is the exact sum of four products, small enough for int16 (|lane| <= 4 * 63 * 128), so
// two results are packed to 16-bit words and `vpmaddwd` applies the sub-block scales: every integer
// below is exact, in any order. The float steps after the integers are those of the kernels llama.cpp
// runs for a batch, as `BlockDot.dotQ4_KInterleaved4` and `BlockDot.dotQ6_KTiled4` reproduce them:
//   q4_K (ggml's repacked gemm): per 64-value sub-block pair j, acc = fma(float(sum_j), d_w * d_a, acc)
//     and mins = fma(float(min_j), dmin_w * d_a, mins); the result is acc - mins.
//   q6_K (ggml-cpu's tiled matmul): per super-block, out = fma(float(sum) * d_w, d_a, out).
#if arch(x86_64) && canImport(_Builtin_intrinsics.intel)
import _Builtin_intrinsics.intel

extension VNNITiles {
    /// The K-quant formats with a tile here.
    public enum KFormat: Sendable { case q4_K, q6_K }

    /// Four activation rows quantised as Q8_K: per row its int8 quants (256 per super-block), Float
    /// scales (one per super-block) and the sums of each 16 quants (16 per super-block).
    public struct KActivations4 {
        public var quants: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer)
        public var scales: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>)
        public var groupSums: (UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>)
        public init(quants: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
                    scales: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>),
                    groupSums: (UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>)) {
            self.quants = quants
            self.scales = scales
            self.groupSums = groupSums
        }
    }

    /// The dot products of four K-quant weight rows (`superBlocks` super-blocks each) with four
    /// activation rows: `out[4 * r + i]` = row r . activation i, exactly as the 4-token kernels of
    /// BlockDot compute it (q4_K: the repacked gemm order; q6_K: the tiled order). Only call when `isSupported`.
    @inline(never)
    public static func kTile4x4(_ format: KFormat, _ rows: Rows4, superBlocks: Int, _ a: KActivations4,
                                into out: UnsafeMutablePointer<Float>) {
        switch format {
        case .q4_K: q4KTile(rows, superBlocks, a, out)
        case .q6_K: q6KTile(rows, superBlocks, a, out)
        }
    }

    // MARK: - q4_K

    /// Row by row over the tokens' super-blocks, prepared once: with the four rows interleaved, the
    /// compiler spilled a fifth of the kernel's instructions' operands to the stack.
    private static func q4KTile(_ rows: Rows4, _ superBlocks: Int, _ a: KActivations4, _ out: UnsafeMutablePointer<Float>) {
        withTokenBlocks(a, superBlocks) { tokens in
            for r in 0..<4 {
                let row = pick(rows, r)
                var acc = _mm_setzero_ps(), mins = _mm_setzero_ps()
                for b in 0..<superBlocks { q4KRow(row + 144 * b, tokens[b], acc: &acc, mins: &mins) }
                _mm_storeu_ps(out + 4 * r, _mm_sub_ps(acc, mins))
            }
        }
    }

    /// One q4_K super-block of one row against the four tokens' super-block b: acc and mins per token.
    @inline(__always)
    private static func q4KRow(_ block: UnsafeRawPointer, _ t: TokenBlock, acc: inout __m128, mins: inout __m128) {
        let d = _mm_mul_ps(_mm_set1_ps(half(block)), t.scales), dmin = _mm_mul_ps(_mm_set1_ps(half(block + 2)), t.scales)
        let (scales, minima) = q4KScalesAndMins(block + 4)
        let mask = _mm256_set1_epi8(0x0F)
        // Sub-block pair j: 64 values, the low nibbles times scale 2j, the high nibbles times scale 2j+1.
        @inline(__always) func pair(_ j: Int, _ pairedGroupSums: __m128i) {
            let packed = _mm256_loadu_si256((block + 16 + 32 * j).assumingMemoryBound(to: __m256i.self))
            let low = _mm256_and_si256(packed, mask), high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask)
            let s = pairScales(scales[2 * j], scales[2 * j + 1])
            @inline(__always) func lanes(_ q: UnsafeRawPointer) -> __m256i {
                let p = q + 64 * j
                return _mm256_madd_epi16(_mm256_packs_epi32(dpbusd(low, p), dpbusd(high, p + 32)), s)
            }
            let sums = reduce4(lanes(t.quants.0), lanes(t.quants.1), lanes(t.quants.2), lanes(t.quants.3))
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sums), d, acc)
            // min_j = m[2j] * G[2j] + m[2j+1] * G[2j+1] per token: one vpmaddwd of the word pairs.
            let m = _mm_madd_epi16(pairedGroupSums, _mm_set1_epi32(minima[2 * j] | (minima[2 * j + 1] << 16)))
            mins = _mm_fmadd_ps(_mm_cvtepi32_ps(m), dmin, mins)
        }
        pair(0, t.pairedGroupSums.0); pair(1, t.pairedGroupSums.1); pair(2, t.pairedGroupSums.2); pair(3, t.pairedGroupSums.3)
    }

    /// The eight 6-bit scales and mins of a q4_K super-block (12 packed bytes, `get_scale_min_k4`).
    @inline(__always)
    private static func q4KScalesAndMins(_ p: UnsafeRawPointer) -> (scales: SIMD8<Int32>, mins: SIMD8<Int32>) {
        let q = p.assumingMemoryBound(to: UInt8.self)
        var scales = SIMD8<Int32>(), mins = SIMD8<Int32>()
        for j in 0..<4 {
            scales[j] = Int32(q[j] & 63); mins[j] = Int32(q[j + 4] & 63)
            scales[j + 4] = Int32((q[j + 8] & 0x0F) | ((q[j] >> 6) << 4))
            mins[j + 4] = Int32((q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4))
        }
        return (scales, mins)
    }

    /// Words for `vpmaddwd` after `vpackssdw(x, y)`: in each 128-bit half the four words from x take
    /// `low`, the four from y take `high`.
    @inline(__always)
    private static func pairScales(_ low: Int32, _ high: Int32) -> __m256i {
        let l = Int64(low) &* 0x0001_0001_0001_0001, h = Int64(high) &* 0x0001_0001_0001_0001  // 0...63 each
        return _mm256_set_epi64x(h, l, h, l)
    }

    // MARK: - q6_K

    private static func q6KTile(_ rows: Rows4, _ superBlocks: Int, _ a: KActivations4, _ out: UnsafeMutablePointer<Float>) {
        withTokenBlocks(a, superBlocks) { tokens in
            for r in 0..<4 {
                let row = pick(rows, r)
                var acc = _mm_setzero_ps()
                for b in 0..<superBlocks { q6KRow(row + 210 * b, tokens[b], acc: &acc) }
                _mm_storeu_ps(out + 4 * r, acc)
            }
        }
    }

    /// acc += float(sum) * d_w * d_a per token, for one q6_K super-block of one row.
    @inline(__always)
    private static func q6KRow(_ block: UnsafeRawPointer, _ t: TokenBlock, acc: inout __m128) {
        let weighted = _mm_mul_ps(_mm_cvtepi32_ps(q6KSums(block, t)), _mm_set1_ps(half(block + 208)))
        acc = _mm_fmadd_ps(weighted, t.scales, acc)
    }

    /// The exact integer dot products of one q6_K super-block with the four tokens' super-block:
    /// sum_k scale_k * (sum of q * a over 16-value group k) - 32 * sum_k scale_k * (group sum k).
    @inline(__always)
    private static func q6KSums(_ block: UnsafeRawPointer, _ t: TokenBlock) -> __m128i {
        // The eight 32-value groups as unsigned 6-bit bytes (`ggml_vec_dot_q6_K_q8_K`'s order: group k
        // multiplies activations 32k..<32k+32).
        let m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3), m12 = _mm256_set1_epi8(12), m48 = _mm256_set1_epi8(48)
        @inline(__always) func load(_ offset: Int) -> __m256i { _mm256_loadu_si256((block + offset).assumingMemoryBound(to: __m256i.self)) }
        @inline(__always) func srli(_ x: __m256i, _ n: Int32) -> __m256i { _mm256_srli_epi16(x, n) }
        @inline(__always) func slli(_ x: __m256i, _ n: Int32) -> __m256i { _mm256_slli_epi16(x, n) }
        @inline(__always) func groups(_ half: Int) -> (__m256i, __m256i, __m256i, __m256i) {
            let low0 = load(64 * half), low1 = load(64 * half + 32), high = load(128 + 32 * half)
            return (_mm256_or_si256(_mm256_and_si256(low0, m4), slli(_mm256_and_si256(high, m2), 4)),
                    _mm256_or_si256(_mm256_and_si256(low1, m4), slli(_mm256_and_si256(high, m12), 2)),
                    _mm256_or_si256(_mm256_and_si256(srli(low0, 4), m4), _mm256_and_si256(high, m48)),
                    _mm256_or_si256(_mm256_and_si256(srli(low1, 4), m4), _mm256_and_si256(srli(high, 2), m48)))
        }
        let (g0, g1, g2, g3) = groups(0), (g4, g5, g6, g7) = groups(1)
        // Scale words: group k's lanes 0..<4 (low 128 bits) take scale 2k, lanes 4..<8 scale 2k+1; after
        // vpackssdw(group k, group k+1) the low half holds [k low, k+1 low], the high half [k high, k+1 high].
        let sc = (block + 192).assumingMemoryBound(to: Int8.self)
        @inline(__always) func words(_ s: Int8) -> Int64 {
            Int64(bitPattern: UInt64(UInt16(bitPattern: Int16(s))) &* 0x0001_0001_0001_0001)
        }
        @inline(__always) func scaleWords(_ k: Int) -> __m256i {
            _mm256_set_epi64x(words(sc[2 * k + 3]), words(sc[2 * k + 1]), words(sc[2 * k + 2]), words(sc[2 * k]))
        }
        let s01 = scaleWords(0), s23 = scaleWords(2), s45 = scaleWords(4), s67 = scaleWords(6)
        // The 16 scales as words in the order vpackssdw leaves the group sums in (see `lanes`).
        let scales16 = _mm256_packs_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64((block + 192).assumingMemoryBound(to: __m128i.self))),
                                          _mm256_cvtepi8_epi32(_mm_loadl_epi64((block + 200).assumingMemoryBound(to: __m128i.self))))
        @inline(__always) func lanes(_ q: UnsafeRawPointer, _ g: UnsafePointer<Int32>) -> __m256i {
            @inline(__always) func pair(_ x: __m256i, _ y: __m256i, _ k: Int, _ s: __m256i) -> __m256i {
                _mm256_madd_epi16(_mm256_packs_epi32(dpbusd(x, q + 32 * k), dpbusd(y, q + 32 * k + 32)), s)
            }
            let sum = _mm256_add_epi32(_mm256_add_epi32(pair(g0, g1, 0, s01), pair(g2, g3, 2, s23)),
                                       _mm256_add_epi32(pair(g4, g5, 4, s45), pair(g6, g7, 6, s67)))
            // Group sums as words, [g0..3 g8..11 | g4..7 g12..15] like `scales16`.
            let g16 = _mm256_packs_epi32(load32(g), load32(g + 8))
            return _mm256_sub_epi32(sum, _mm256_slli_epi32(_mm256_madd_epi16(g16, scales16), 5))
        }
        return reduce4(lanes(t.quants.0, t.groupSums.0), lanes(t.quants.1, t.groupSums.1),
                       lanes(t.quants.2, t.groupSums.2), lanes(t.quants.3, t.groupSums.3))
    }

    // MARK: - Shared

    /// The four tokens' super-blocks 0..<superBlocks, prepared once for the four rows.
    @inline(__always)
    private static func withTokenBlocks(_ a: KActivations4, _ superBlocks: Int, _ body: (UnsafeMutableBufferPointer<TokenBlock>) -> Void) {
        withUnsafeTemporaryAllocation(of: TokenBlock.self, capacity: superBlocks) { tokens in
            for b in 0..<superBlocks { tokens.initializeElement(at: b, to: TokenBlock(a, b)) }
            body(tokens)
        }
    }

    @inline(__always)
    private static func pick(_ rows: Rows4, _ r: Int) -> UnsafeRawPointer {
        switch r {
        case 0: rows.0
        case 1: rows.1
        case 2: rows.2
        default: rows.3
        }
    }

    /// Super-block b of the four tokens.
    private struct TokenBlock {
        let quants: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer)
        let groupSums: (UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>)
        /// d_a of each token.
        let scales: __m128
        /// Per sub-block pair j, per token, the words (G[2j], G[2j+1]) with G[p] the sum of the 32
        /// activations of sub-block p (two 16-value group sums).
        let pairedGroupSums: (__m128i, __m128i, __m128i, __m128i)

        @inline(__always)
        init(_ a: KActivations4, _ b: Int) {
            quants = (a.quants.0 + 256 * b, a.quants.1 + 256 * b, a.quants.2 + 256 * b, a.quants.3 + 256 * b)
            groupSums = (a.groupSums.0 + 16 * b, a.groupSums.1 + 16 * b, a.groupSums.2 + 16 * b, a.groupSums.3 + 16 * b)
            scales = _mm_setr_ps(a.scales.0[b], a.scales.1[b], a.scales.2[b], a.scales.3[b])
            // Per token: hadd pairs the 16 group sums into [G0 G1 G4 G5 | G2 G3 G6 G7]; packing to words
            // and restoring the order gives the dword j = (G[2j], G[2j+1]) for j = 0..<4.
            @inline(__always) func pairs(_ g: UnsafePointer<Int32>) -> __m128i {
                let h = _mm256_hadd_epi32(load32(g), load32(g + 8))
                let v = unsafeBitCast(h, to: SIMD8<Int32>.self)
                let ordered = SIMD8<Int32>(v[0], v[1], v[4], v[5], v[2], v[3], v[6], v[7])
                let words = SIMD8<Int16>(truncatingIfNeeded: ordered)
                return unsafeBitCast(words, to: __m128i.self)
            }
            let p = (pairs(groupSums.0), pairs(groupSums.1), pairs(groupSums.2), pairs(groupSums.3))
            // Transpose: dword j of token t -> dword t of pair j.
            let t01lo = _mm_unpacklo_epi32(p.0, p.1), t23lo = _mm_unpacklo_epi32(p.2, p.3)
            let t01hi = _mm_unpackhi_epi32(p.0, p.1), t23hi = _mm_unpackhi_epi32(p.2, p.3)
            pairedGroupSums = (_mm_unpacklo_epi64(t01lo, t23lo), _mm_unpackhi_epi64(t01lo, t23lo),
                               _mm_unpacklo_epi64(t01hi, t23hi), _mm_unpackhi_epi64(t01hi, t23hi))
        }
    }

    /// The sums of the eight lanes of each of four vectors, as one vector (exact integers).
    @inline(__always)
    private static func reduce4(_ a: __m256i, _ b: __m256i, _ c: __m256i, _ d: __m256i) -> __m128i {
        let h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d))
        let v = unsafeBitCast(h, to: SIMD8<Int32>.self)
        return unsafeBitCast(v.lowHalf &+ v.highHalf, to: __m128i.self)
    }

    /// `vpdpbusd` from zero: lane k = the four products of unsigned weight bytes 4k..<4k+4 with the
    /// signed activation bytes at `x`.
    @inline(__always)
    private static func dpbusd(_ w: __m256i, _ x: UnsafeRawPointer) -> __m256i {
        _mm256_mask_dpbusd_epi32(_mm256_setzero_si256(), 0xFF, w, _mm256_loadu_si256(x.assumingMemoryBound(to: __m256i.self)))
    }

    @inline(__always)
    private static func half(_ p: UnsafeRawPointer) -> Float {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(Int32(p.loadUnaligned(as: UInt16.self)))))
    }
}

@inline(__always)
private func load32(_ p: UnsafePointer<Int32>) -> __m256i { _mm256_loadu_si256(UnsafeRawPointer(p).assumingMemoryBound(to: __m256i.self)) }
#endif
