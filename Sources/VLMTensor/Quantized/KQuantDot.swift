// K-quant weights (256-value super-blocks) against Q8_K activations, in ggml's x86 arithmetic order.
//
// ggml's AVX2 kernels (`ggml_vec_dot_q*_K_q8_K`, arch/x86/quants.c) keep eight int32 lanes per
// super-block: lane k holds the scaled products of elements 4k..<4k+4 of every 32-value slice
// (`_mm256_maddubs_epi16` then `_mm256_madd_epi16` with the sub-block scales). The lanes become
// floats, are fused-multiply-added with d_w * d_a into eight float accumulators, and those are reduced
// with `hsum_float_8` at the end. The integer part is exact whatever the order; what must match is
// which products share a lane, and the float operations after it.

/// The scales and mins of a q4_K / q5_K super-block: eight 6-bit pairs packed in 12 bytes
/// (`get_scale_min_k4`).
@inline(__always)
func kScalesAndMins(_ packed: UnsafeRawPointer) -> (scales: SIMD8<Int32>, mins: SIMD8<Int32>) {
    var scales = SIMD8<Int32>(), mins = SIMD8<Int32>()
    for j in 0..<8 {
        let (s, m) = BlockDot.q4KScaleMin(packed, j)
        scales[j] = s; mins[j] = m
    }
    return (scales, mins)
}

/// Lanes 0..<4 take `low`, lanes 4..<8 take `high`: the sub-block scale of the first and second
/// 16 values of a 32-value slice (`get_scale_shuffle_q3k` / `get_scale_shuffle`).
@inline(__always)
func halvesScale(_ low: Int32, _ high: Int32) -> SIMD8<Int32> {
    SIMD8(lowHalf: SIMD4(repeating: low), highHalf: SIMD4(repeating: high))
}

@inline(__always)
func kHalf(_ block: UnsafeRawPointer, _ offset: Int) -> Float {
    halfToFloat(block.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
}

/// The sum of 16-value activation group sums 2p and 2p+1 (`_mm_hadd_epi16` of `bsums`), p in 0..<8.
@inline(__always)
func pairedGroupSums(_ g: UnsafePointer<Int32>) -> SIMD8<Int32> {
    var s = SIMD8<Int32>()
    for p in 0..<8 { s[p] = g[2 * p] &+ g[2 * p + 1] }
    return s
}

/// The mins term of q4_K / q5_K: four lanes, lane p = m[2p]*s[2p] + m[2p+1]*s[2p+1] (`_mm_madd_epi16`).
@inline(__always)
func minsLanes(_ mins: SIMD8<Int32>, _ sums: SIMD8<Int32>) -> SIMD4<Int32> {
    let p = mins &* sums
    return SIMD4(p[0] &+ p[1], p[2] &+ p[3], p[4] &+ p[5], p[6] &+ p[7])
}

extension BlockDot {
    static func dotKQuant(_ format: WeightFormat, _ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        switch format {
        case .q2_K: dotQ2_K(row, a, blocks: blocks)
        case .q3_K: dotQ3_K(row, a, blocks: blocks)
        case .q4_K: dotQ4_K(row, a, blocks: blocks)
        case .q5_K: dotQ5_K(row, a, blocks: blocks)
        case .q6_K: dotQ6_K(row, a, blocks: blocks)
        default: preconditionFailure("\(format) is not a K-quant")
        }
    }

    /// acc + d * lanes, lane by lane with one rounding (`_mm256_fmadd_ps(d, cvtepi32_ps(lanes), acc)`).
    @inline(__always)
    static func fma8(_ acc: SIMD8<Float>, _ d: Float, _ lanes: SIMD8<Int32>) -> SIMD8<Float> {
        acc.addingProduct(SIMD8(repeating: d), laneFloats(lanes))
    }

    /// q2_K: 16 sub-blocks of 16 with 4-bit scale and min; x = d*scale*q - dmin*min, q in 0...3.
    /// The mins go into the same accumulator first, then the quants.
    static func dotQ2_K(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let block = row + b * 84, aq = a.quants + b * 256, g = a.groupSums + b * 16
            let sc = block.assumingMemoryBound(to: UInt8.self), qs = block + 16
            let ad = a.scales[b], d = ad * kHalf(block, 80), dmin = -ad * kHalf(block, 82)
            var mins = SIMD8<Int32>()
            for k in 0..<8 {
                mins[k] = Int32(sc[2 * k] >> 4) &* g[2 * k] &+ Int32(sc[2 * k + 1] >> 4) &* g[2 * k + 1]
            }
            acc = fma8(acc, dmin, mins)
            var sumi = SIMD8<Int32>()
            for j in 0..<2 {
                let bits = Bytes32(qs + 32 * j)
                for x in 0..<4 {
                    let q = bits.shiftedRight(Int32(2 * x)).masked(3)
                    let s = halvesScale(Int32(sc[8 * j + 2 * x] & 15), Int32(sc[8 * j + 2 * x + 1] & 15))
                    sumi &+= s &* quadSums(q, aq + 128 * j + 32 * x)
                }
            }
            acc = fma8(acc, d, sumi)
        }
        return horizontalSum8(acc)
    }

    /// The sixteen 6-bit q3_K scales, minus 32.
    @inline(__always)
    static func q3KScales(_ p: UnsafeRawPointer) -> SIMD16<Int32> {
        let a0 = p.loadUnaligned(as: UInt32.self), a1 = p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        let a2 = p.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        let low: UInt32 = 0x0F0F_0F0F, two: UInt32 = 0x0303_0303
        let words = SIMD4<UInt32>((a0 & low) | ((a2 & two) << 4), (a1 & low) | (((a2 >> 2) & two) << 4),
                                  ((a0 >> 4) & low) | (((a2 >> 4) & two) << 4), ((a1 >> 4) & low) | (((a2 >> 6) & two) << 4))
        let bytes = unsafeBitCast(words, to: SIMD16<UInt8>.self)
        return SIMD16<Int32>(truncatingIfNeeded: bytes) &- 32
    }

    /// q3_K: 16 sub-blocks of 16 with signed 6-bit scales; q = low 2 bits - (high bit clear ? 4 : 0).
    static func dotQ3_K(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let block = row + b * 110, aq = a.quants + b * 256
            let hmask = Bytes32(block), qs = block + 32
            let sc = q3KScales(block + 96)
            let d = a.scales[b] * kHalf(block, 108)
            var sumi = SIMD8<Int32>()
            for j in 0..<2 {
                let bits = Bytes32(qs + 32 * j)
                for x in 0..<4 {
                    let low = bits.shiftedRight(Int32(2 * x)).masked(3)
                    let high = hmask.shiftedRight(Int32(4 * j + x)).masked(1).shiftedLeft(2)  // 4 when set
                    let an = aq + 128 * j + 32 * x
                    let lanes = quadSums(low, an) &- quadSums(Bytes32(repeating: 4) &- high, an)
                    sumi &+= halvesScale(sc[8 * j + 2 * x], sc[8 * j + 2 * x + 1]) &* lanes
                }
            }
            acc = fma8(acc, d, sumi)
        }
        return horizontalSum8(acc)
    }

    /// q4_K: 8 sub-blocks of 32 with 6-bit scales and mins; x = d*scale*q - dmin*min. The mins are
    /// accumulated in a separate four-lane accumulator added at the end.
    static func dotQ4_K(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var acc = SIMD8<Float>(), accMins = SIMD4<Float>()
        for b in 0..<blocks {
            let block = row + b * 144, aq = a.quants + b * 256, qs = block + 16
            let ad = a.scales[b], d = ad * kHalf(block, 0), dmin = -ad * kHalf(block, 2)
            let (scales, mins) = kScalesAndMins(block + 4)
            let m = minsLanes(mins, pairedGroupSums(a.groupSums + b * 16))
            accMins = accMins.addingProduct(SIMD4(repeating: dmin), SIMD4(Float(m[0]), Float(m[1]), Float(m[2]), Float(m[3])))
            acc = fma8(acc, d, q4KLanes(qs, scales, aq))
        }
        return horizontalSum8(acc) + ((accMins[0] + accMins[2]) + (accMins[1] + accMins[3]))
    }

    /// The eight exact integer lanes of a q4_K super-block's quants (`qs`) times their sub-block scales.
    @inline(__always)
    static func q4KLanes(_ qs: UnsafeRawPointer, _ scales: SIMD8<Int32>, _ aq: UnsafeRawPointer) -> SIMD8<Int32> {
        var sumi = SIMD8<Int32>()
        for j in 0..<4 {
            sumi &+= q4KPairLanes(Bytes32(qs + 32 * j), scales[2 * j], scales[2 * j + 1], aq + 64 * j)
        }
        return sumi
    }

    /// q5_K: q4_K with a fifth bit per value; the mins term is reduced to one integer per super-block
    /// and fused-multiply-added into a scalar.
    static func dotQ5_K(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var acc = SIMD8<Float>(), sumMins: Float = 0
        for b in 0..<blocks {
            let block = row + b * 176, aq = a.quants + b * 256
            let ad = a.scales[b], d = ad * kHalf(block, 0), dmin = -ad * kHalf(block, 2)
            let (scales, mins) = kScalesAndMins(block + 4)
            let m = minsLanes(mins, pairedGroupSums(a.groupSums + b * 16))
            sumMins = fusedMultiplyAdd(dmin, Float((m[0] &+ m[1]) &+ (m[2] &+ m[3])), sumMins)
            acc = fma8(acc, d, q5KLanes(block, scales, aq))
        }
        return horizontalSum8(acc) + sumMins
    }

    /// q6_K: 16 sub-blocks of 16 with int8 scales; q = 4 low bits | 2 high bits << 4, minus 32. ggml
    /// multiplies the unsigned q and subtracts 32 * scale * (activation group sum) per lane.
    static func dotQ6_K(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let block = row + b * 210
            acc = fma8(acc, a.scales[b] * kHalf(block, 208), q6KLanes(block, a, b))
        }
        return horizontalSum8(acc)
    }

    /// The eight exact integer lanes of q6_K super-block `block` against activation block `b`: the
    /// scaled products of the signed (q - 32) values, in the lanes of `ggml_vec_dot_q6_K_q8_K`.
    @inline(__always)
    static func q6KLanes(_ block: UnsafeRawPointer, _ a: ActivationView, _ b: Int) -> SIMD8<Int32> {
        Q6KQuants(block).lanes(a, b)
    }

    /// The eight exact integer lanes of a q5_K super-block's quants times their sub-block scales.
    @inline(__always)
    static func q5KLanes(_ block: UnsafeRawPointer, _ scales: SIMD8<Int32>, _ aq: UnsafeRawPointer) -> SIMD8<Int32> {
        let hbits = Bytes32(block + 16), qs = block + 48
        var sumi = SIMD8<Int32>()
        for j in 0..<4 {
            let packed = Bytes32(qs + 32 * j)
            let q0 = packed.masked(0x0F) | hbits.shiftedRight(Int32(2 * j)).masked(1).shiftedLeft(4)
            let q1 = packed.shiftedRight(4) | hbits.shiftedRight(Int32(2 * j + 1)).masked(1).shiftedLeft(4)
            sumi &+= scaledQuadSums(q0, aq + 64 * j, low: scales[2 * j], high: scales[2 * j])
            sumi &+= scaledQuadSums(q1, aq + 64 * j + 32, low: scales[2 * j + 1], high: scales[2 * j + 1])
        }
        return sumi
    }

    /// q4_K / q5_K in the order of ggml-cpu's tiled K-quant matmul (see `dotQ6_KTiled`): per super-block
    /// one exact integer for the quants and one for the mins; the quants times d_w, minus the mins
    /// times dmin in one fused step, then fused-multiply-added with d_a into the output.
    static func dotKQuantWithMinsTiled(_ format: WeightFormat, _ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        let blockBytes = format == .q4_K ? 144 : 176
        var out: Float = 0
        for b in 0..<blocks {
            let block = row + b * blockBytes, aq = a.quants + b * 256
            let (scales, mins) = kScalesAndMins(block + 4)
            let lanes = format == .q4_K ? q4KLanes(block + 16, scales, aq) : q5KLanes(block, scales, aq)
            let minsSum = minsLanes(mins, pairedGroupSums(a.groupSums + b * 16)).wrappedSum()
            let quants = Float(lanes.wrappedSum()) * kHalf(block, 0)
            out = fusedMultiplyAdd(fusedMultiplyAdd(-Float(minsSum), kHalf(block, 2), quants), a.scales[b], out)
        }
        return out
    }

    /// q6_K in the order of ggml-cpu's tiled K-quant matmul (`ggml_compute_forward_mul_mat_tiled`,
    /// ggml-cpu/tiled/tiled.cpp), which llama.cpp takes instead of `ggml_vec_dot_q6_K_q8_K` when the
    /// batch has 8 or more rows (`ggml_tiled_min_batch`) and the matrix is not repacked (q6_K never is
    /// on x86). Its AVX-512 VNNI microtile (`tiled_run_micro_vnni_8x16`) reduces each super-block to
    /// one exact integer, multiplies it by d_w, and fuses the product with d_a into the output:
    /// out = fma(float(sum) * d_w, d_a, out), super-block by super-block from zero.
    static func dotQ6_KTiled(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var out: Float = 0
        for b in 0..<blocks {
            let block = row + b * 210
            let weighted = Float(q6KLanes(block, a, b).wrappedSum()) * kHalf(block, 208)
            out = fusedMultiplyAdd(weighted, a.scales[b], out)
        }
        return out
    }

    /// `dotQ6_KTiled` for four activation rows (`views[first..<first + 4]`): each super-block is
    /// unpacked once for the four; every output has exactly its single-row arithmetic.
    static func dotQ6_KTiled4(_ row: UnsafeRawPointer, _ views: UnsafeBufferPointer<ActivationView>, first: Int,
                              blocks: Int) -> SIMD4<Float> {
        let v = (views[first], views[first + 1], views[first + 2], views[first + 3])
        var out = SIMD4<Float>()
        for b in 0..<blocks {
            let block = row + b * 210, q = Q6KQuants(block)
            let sums = wrappedSums(q.lanes(v.0, b), q.lanes(v.1, b), q.lanes(v.2, b), q.lanes(v.3, b))
            let weighted = SIMD4<Float>(sums) * kHalf(block, 208)
            out = out.addingProduct(weighted, SIMD4(v.0.scales[b], v.1.scales[b], v.2.scales[b], v.3.scales[b]))
        }
        return out
    }

    /// q4_K in the order of ggml's x86 repacked kernels, which llama.cpp uses for every q4_K matrix whose
    /// row count is a multiple of 8. The gemv (`ggml_gemv_q4_K_8x8_q8_K`, single rows and a batch's
    /// remainder): one exact integer sum per super-block for the quants and one for the mins, each
    /// fused-multiply-added with (d_w * d_a) into its own scalar; the result is quants - mins.
    /// The gemm (`ggml_gemm_q4_K_8x8_q8_K`, each whole group of four rows of a batch of more than
    /// three, `gemmOrder`): the same, but one fused multiply-add per 64-value sub-block pair.
    static func dotQ4_KInterleaved(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int, gemmOrder: Bool = false) -> Float {
        var acc: Float = 0, accMins: Float = 0
        for b in 0..<blocks {
            let block = row + b * 144, aq = a.quants + b * 256, qs = block + 16, ad = a.scales[b]
            let (scales, mins) = kScalesAndMins(block + 4)
            let m = minsLanes(mins, pairedGroupSums(a.groupSums + b * 16))
            let d = kHalf(block, 0) * ad, dmin = kHalf(block, 2) * ad
            var sumi = SIMD8<Int32>()
            for j in 0..<4 {
                sumi &+= q4KPairLanes(Bytes32(qs + 32 * j), scales[2 * j], scales[2 * j + 1], aq + 64 * j)
                if gemmOrder {
                    acc = fusedMultiplyAdd(Float(sumi.wrappedSum()), d, acc)
                    accMins = fusedMultiplyAdd(Float(m[j]), dmin, accMins)
                    sumi = SIMD8<Int32>()
                }
            }
            if !gemmOrder {
                acc = fusedMultiplyAdd(Float(sumi.wrappedSum()), d, acc)
                accMins = fusedMultiplyAdd(Float(m.wrappedSum()), dmin, accMins)
            }
        }
        return acc - accMins
    }

    /// The gemm order of `dotQ4_KInterleaved` for four activation rows (`views[first..<first + 4]`) at
    /// once, as `ggml_gemm_q4_K_8x8_q8_K` runs them: each super-block's nibbles and scales are unpacked
    /// once for the four; every output has exactly its single-row arithmetic.
    static func dotQ4_KInterleaved4(_ row: UnsafeRawPointer, _ views: UnsafeBufferPointer<ActivationView>, first: Int,
                                    blocks: Int) -> SIMD4<Float> {
        let v = (views[first], views[first + 1], views[first + 2], views[first + 3])
        var acc = SIMD4<Float>(), accMins = SIMD4<Float>()
        for b in 0..<blocks {
            let block = row + b * 144, qs = block + 16, at = b * 256
            let (scales, mins) = kScalesAndMins(block + 4)
            let m = (minsLanes(mins, pairedGroupSums(v.0.groupSums + b * 16)), minsLanes(mins, pairedGroupSums(v.1.groupSums + b * 16)),
                     minsLanes(mins, pairedGroupSums(v.2.groupSums + b * 16)), minsLanes(mins, pairedGroupSums(v.3.groupSums + b * 16)))
            let ad = SIMD4(v.0.scales[b], v.1.scales[b], v.2.scales[b], v.3.scales[b])
            let d = kHalf(block, 0) * ad, dmin = kHalf(block, 2) * ad
            for j in 0..<4 {
                let packed = Bytes32(qs + 32 * j), low = scales[2 * j], high = scales[2 * j + 1], offset = at + 64 * j
                let sums = wrappedSums(q4KPairLanes(packed, low, high, v.0.quants + offset),
                                       q4KPairLanes(packed, low, high, v.1.quants + offset),
                                       q4KPairLanes(packed, low, high, v.2.quants + offset),
                                       q4KPairLanes(packed, low, high, v.3.quants + offset))
                acc = acc.addingProduct(SIMD4<Float>(sums), d)
                accMins = accMins.addingProduct(SIMD4(Float(m.0[j]), Float(m.1[j]), Float(m.2[j]), Float(m.3[j])), dmin)
            }
        }
        return acc - accMins
    }

    /// The exact integer lanes of 64 q4_K values (32 packed bytes: low nibbles then high nibbles) against
    /// 64 activations `aq`, each half times its sub-block scale.
    @inline(__always)
    static func q4KPairLanes(_ packed: Bytes32, _ lowScale: Int32, _ highScale: Int32, _ aq: UnsafeRawPointer) -> SIMD8<Int32> {
        scaledQuadSums(packed.masked(0x0F), aq, low: lowScale, high: lowScale)
            &+ scaledQuadSums(packed.shiftedRight(4), aq + 32, low: highScale, high: highScale)
    }
}

/// A q6_K super-block's 256 values unpacked to unsigned 6-bit bytes (q + 32), in the eight 32-byte
/// groups `ggml_vec_dot_q6_K_q8_K` multiplies, with its int8 sub-block scales.
struct Q6KQuants {
    let groups: (Bytes32, Bytes32, Bytes32, Bytes32, Bytes32, Bytes32, Bytes32, Bytes32)
    let scales: UnsafePointer<Int8>

    @inline(__always)
    init(_ block: UnsafeRawPointer) {
        scales = (block + 192).assumingMemoryBound(to: Int8.self)
        @inline(__always) func half(_ j: Int) -> (Bytes32, Bytes32, Bytes32, Bytes32) {
            let low0 = Bytes32(block + 64 * j), low1 = Bytes32(block + 64 * j + 32), high = Bytes32(block + 128 + 32 * j)
            return (low0.masked(0x0F) | high.masked(3).shiftedLeft(4), low1.masked(0x0F) | high.masked(12).shiftedLeft(2),
                    low0.shiftedRight(4) | high.masked(48), low1.shiftedRight(4) | high.shiftedRight(2).masked(48))
        }
        let (a, b) = (half(0), half(1))
        groups = (a.0, a.1, a.2, a.3, b.0, b.1, b.2, b.3)
    }

    /// The eight exact integer lanes against activation block `b` of `a`: the scaled products of the
    /// signed (q - 32) values (ggml multiplies the unsigned q and subtracts 32 * scale * group sum).
    @inline(__always)
    func lanes(_ a: ActivationView, _ b: Int) -> SIMD8<Int32> {
        let aq = a.quants + b * 256, g = a.groupSums + b * 16, sc = scales
        @inline(__always) func scaled(_ k: Int, _ q: Bytes32) -> SIMD8<Int32> {
            scaledQuadSums(q, aq + 32 * k, low: Int32(sc[2 * k]), high: Int32(sc[2 * k + 1]))
        }
        var sumi = scaled(0, groups.0) &+ scaled(1, groups.1)
        sumi &+= scaled(2, groups.2) &+ scaled(3, groups.3)
        sumi &+= scaled(4, groups.4) &+ scaled(5, groups.5)
        sumi &+= scaled(6, groups.6) &+ scaled(7, groups.7)
        var offset = SIMD8<Int32>()
        for k in 0..<8 { offset[k] = (g[2 * k] &* Int32(sc[2 * k]) &+ g[2 * k + 1] &* Int32(sc[2 * k + 1])) &<< 5 }
        return sumi &- offset
    }
}
