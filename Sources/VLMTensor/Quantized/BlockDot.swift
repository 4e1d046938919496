// Dot products of one weight row (in its stored block format) with one prepared activation row.
//
// Each kernel mirrors ggml's `ggml_vec_dot_<weight>_<activation>`: integer products inside a block,
// one float multiply-add per block with the two scales. The integer part is exact, so results differ
// from ggml only in the order floats are summed.

/// Raw pointers into a `QuantizedActivation`, valid inside `QuantizedActivation.withView`.
public struct ActivationView {
    let scales: UnsafePointer<Float>
    let blockSums: UnsafePointer<Float>
    let groupSums: UnsafePointer<Int32>
    let quants: UnsafeRawPointer
    let values: UnsafePointer<Float>
}

extension QuantizedActivation {
    public func withView<R>(_ body: (ActivationView) throws -> R) rethrows -> R {
        // Empty arrays still give a (dangling but never read) base address via a one-element stand-in.
        try scales.withUnsafeBufferPointerOrDummy { s in
            try blockSums.withUnsafeBufferPointerOrDummy { bs in
                try groupSums.withUnsafeBufferPointerOrDummy { gs in
                    try quants.withUnsafeBufferPointerOrDummy { q in
                        try values.withUnsafeBufferPointerOrDummy { v in
                            try body(ActivationView(scales: s, blockSums: bs, groupSums: gs,
                                                    quants: UnsafeRawPointer(q), values: v))
                        }
                    }
                }
            }
        }
    }
}

extension Array where Element: Numeric {
    fileprivate func withUnsafeBufferPointerOrDummy<R>(_ body: (UnsafePointer<Element>) throws -> R) rethrows -> R {
        if isEmpty { return try [Element.zero].withUnsafeBufferPointer { try body($0.baseAddress!) } }
        return try withUnsafeBufferPointer { try body($0.baseAddress!) }
    }
}

/// Sum of 16 int16 products of small integers (each product and pair sum fits in Int16).
@inline(__always)
private func dot16(_ w: SIMD16<Int16>, _ a: UnsafeRawPointer) -> Int32 {
    let activation = SIMD16<Int16>(truncatingIfNeeded: a.loadUnaligned(as: SIMD16<Int8>.self))
    return SIMD16<Int32>(truncatingIfNeeded: w &* activation).wrappedSum()
}

@inline(__always)
private func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    halfToFloat(p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
}

enum BlockDot {
    /// Dispatches on the weight format; `columns` is the row length in values.
    @inline(__always)
    static func dot(_ format: WeightFormat, row: UnsafeRawPointer, _ a: ActivationView, columns: Int) -> Float {
        switch format {
        case .f32: return dotF32(row.assumingMemoryBound(to: Float.self), a.values, columns)
        case .f16: return dotF16(row.assumingMemoryBound(to: UInt16.self), a.values, columns)
        case .bf16: return dotBF16(row.assumingMemoryBound(to: UInt16.self), a.values, columns)
        case .q8_0: return dotQ8_0(row, a, blocks: columns / 32)
        case .q4_0: return dotQ4_0(row, a, blocks: columns / 32)
        case .q4_1: return dotQ4_1(row, a, blocks: columns / 32)
        case .q4_K: return dotQ4_K(row, a, blocks: columns / 256)
        case .q6_K: return dotQ6_K(row, a, blocks: columns / 256)
        }
    }

    static func dotF32(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD16<Float>()
        var i = 0
        while i + 16 <= n {
            acc.addProduct(UnsafeRawPointer(w + i).loadUnaligned(as: SIMD16<Float>.self),
                           UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self))
            i += 16
        }
        var sum = acc.sum()
        while i < n { sum += w[i] * x[i]; i += 1 }
        return sum
    }

    static func dotF16(_ w: UnsafePointer<UInt16>, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var sum: Float = 0
        for i in 0..<n { sum += halfToFloat(w[i]) * x[i] }
        return sum
    }

    static func dotBF16(_ w: UnsafePointer<UInt16>, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var sum: Float = 0
        for i in 0..<n { sum += bfloat16ToFloat(w[i]) * x[i] }
        return sum
    }

    // The 32-value formats follow ggml's AVX2 kernels exactly: per block, eight int32 lanes each hold
    // the products of four consecutive values; each lane is fused-multiply-added, scaled by d_w*d_a,
    // into a float lane accumulator; the lanes are summed with `hsum_float_8` at the end.
    // The integer work stays in 16-bit lanes with same-type SIMD operations (even/odd bytes split by
    // shifts, as `pmaddubsw`/`pmaddwd` would), which the compiler lowers to plain vector instructions.

    /// q8_0 x Q8_0: sum_b d_w * d_a * sum(q_w * q_a).
    static func dotQ8_0(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let block = row + b * 34, aq = a.quants + b * 32
            let w0 = block.loadUnaligned(fromByteOffset: 2, as: SIMD8<Int16>.self)
            let w1 = block.loadUnaligned(fromByteOffset: 18, as: SIMD8<Int16>.self)
            // Two 127*127 products fit Int16; four would not, so pairs are widened before adding.
            let pairs0 = pairSums(even: signedEvenBytes(w0), odd: signedOddBytes(w0), aq)
            let pairs1 = pairSums(even: signedEvenBytes(w1), odd: signedOddBytes(w1), aq + 16)
            acc = accumulate(acc, scale: half(block, 0) * a.scales[b],
                             SIMD8(lowHalf: quadSums(pairs0), highHalf: quadSums(pairs1)))
        }
        return horizontalSum8(acc)
    }

    /// q4_0 x Q8_0: nibbles are offset by 8.
    static func dotQ4_0(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let block = row + b * 18
            let lanes = nibbleLaneSums(block + 2, a.quants + b * 32, offset: 8)
            acc = accumulate(acc, scale: half(block, 0) * a.scales[b], lanes)
        }
        return horizontalSum8(acc)
    }

    /// q4_1 x Q8_1: d_w*d_a*sum(q_w*q_a) + m_w * s_a, where s_a = d_a * sum(q_a); the m*s terms are
    /// summed separately and added last.
    static func dotQ4_1(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        var minimumTerms: Float = 0
        for b in 0..<blocks {
            let block = row + b * 20
            minimumTerms = fusedMultiplyAdd(half(block, 2), a.blockSums[b], minimumTerms)
            let lanes = nibbleLaneSums(block + 4, a.quants + b * 32, offset: 0)
            acc = accumulate(acc, scale: half(block, 0) * a.scales[b], lanes)
        }
        return horizontalSum8(acc) + minimumTerms
    }

    /// Lane sums for 16 bytes of nibbles (values 0..<16 low, 16..<32 high, minus `offset`) against 32 int8.
    @inline(__always)
    static func nibbleLaneSums(_ nibbles: UnsafeRawPointer, _ aq: UnsafeRawPointer, offset: Int16) -> SIMD8<Int32> {
        let packed = nibbles.loadUnaligned(as: SIMD8<Int16>.self)  // byte 2m in the low half of lane m
        let lowEven = (packed & 0x000F) &- offset, lowOdd = ((packed &>> 8) & 0x000F) &- offset
        let highEven = ((packed &>> 4) & 0x000F) &- offset, highOdd = ((packed &>> 12) & 0x000F) &- offset
        let pairs0 = pairSums(even: lowEven, odd: lowOdd, aq)
        let pairs1 = pairSums(even: highEven, odd: highOdd, aq + 16)
        return SIMD8(lowHalf: quadSums(pairs0), highHalf: quadSums(pairs1))
    }

    /// Lane m = even[m] * a[2m] + odd[m] * a[2m+1] for 16 int8 activations at `a`.
    @inline(__always)
    static func pairSums(even: SIMD8<Int16>, odd: SIMD8<Int16>, _ a: UnsafeRawPointer) -> SIMD8<Int16> {
        let activations = a.loadUnaligned(as: SIMD8<Int16>.self)
        return even &* signedEvenBytes(activations) &+ odd &* signedOddBytes(activations)
    }

    @inline(__always) static func signedEvenBytes(_ v: SIMD8<Int16>) -> SIMD8<Int16> { (v &<< 8) &>> 8 }
    @inline(__always) static func signedOddBytes(_ v: SIMD8<Int16>) -> SIMD8<Int16> { v &>> 8 }

    /// Adjacent Int16 lanes summed into Int32 lanes (`pmaddwd` with ones): lane k = pairs[2k] + pairs[2k+1].
    @inline(__always)
    static func quadSums(_ pairs: SIMD8<Int16>) -> SIMD4<Int32> {
        let words = unsafeBitCast(pairs, to: SIMD4<Int32>.self)
        return ((words &<< 16) &>> 16) &+ (words &>> 16)
    }

    /// acc + scale * lanes per lane with one rounding (`_mm256_fmadd_ps`). The lane sums are below 2^22,
    /// so they convert to Float exactly through the 1.5*2^23 bit-pattern trick (same-type SIMD only).
    @inline(__always)
    static func accumulate(_ acc: SIMD8<Float>, scale: Float, _ lanes: SIMD8<Int32>) -> SIMD8<Float> {
        let asFloat = unsafeBitCast(lanes &+ 0x4B40_0000, to: SIMD8<Float>.self) - 12_582_912
        return acc.addingProduct(SIMD8(repeating: scale), asFloat)
    }

    /// The 6-bit scale and min of sub-block `j` (0..<8) of a q4_K block (`get_scale_min_k4`).
    @inline(__always)
    static func q4KScaleMin(_ s: UnsafeRawPointer, _ j: Int) -> (scale: Int32, min: Int32) {
        let q = s.assumingMemoryBound(to: UInt8.self)
        if j < 4 { return (Int32(q[j] & 63), Int32(q[j + 4] & 63)) }
        return (Int32((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4)), Int32((q[j + 4] >> 4) | ((q[j] >> 6) << 4)))
    }

    /// q4_K x Q8_K: 8 sub-blocks of 32 with 6-bit scales and mins; x = d*scale*q - dmin*min.
    static func dotQ4_K(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var sum: Float = 0
        for b in 0..<blocks {
            let block = row + b * 144, aq = a.quants + b * 256, scales = block + 4, qs = block + 16
            var sumi: Int32 = 0, sumMins: Int32 = 0
            for j in 0..<4 {
                let (sc0, m0) = q4KScaleMin(scales, 2 * j), (sc1, m1) = q4KScaleMin(scales, 2 * j + 1)
                var lowSum: Int32 = 0, highSum: Int32 = 0
                for half16 in 0..<2 {
                    let packed = qs.loadUnaligned(fromByteOffset: 32 * j + 16 * half16, as: SIMD16<UInt8>.self)
                    lowSum += dot16(SIMD16<Int16>(truncatingIfNeeded: packed & 0x0F), aq + 64 * j + 16 * half16)
                    highSum += dot16(SIMD16<Int16>(truncatingIfNeeded: packed &>> 4), aq + 64 * j + 32 + 16 * half16)
                }
                sumi += sc0 * lowSum + sc1 * highSum
                let g = a.groupSums + b * 16 + 4 * j
                sumMins += m0 * (g[0] + g[1]) + m1 * (g[2] + g[3])
            }
            let d = half(block, 0) * a.scales[b], dmin = half(block, 2) * a.scales[b]
            sum += d * Float(sumi) - dmin * Float(sumMins)
        }
        return sum
    }

    /// q6_K x Q8_K: 16 sub-blocks of 16 with int8 scales; q = 4 low bits | 2 high bits << 4, minus 32.
    static func dotQ6_K(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var sum: Float = 0
        for b in 0..<blocks {
            let block = row + b * 210, aq = a.quants + b * 256
            let scales = (block + 192).assumingMemoryBound(to: Int8.self)
            var sumi: Int32 = 0
            for n in 0..<2 {
                let ql = block + 64 * n, qh = block + 128 + 32 * n, sc = scales + 8 * n, an = aq + 128 * n
                for h in 0..<2 {  // l in 16h..<16h+16 shares one scale per quarter
                    let low0 = ql.loadUnaligned(fromByteOffset: 16 * h, as: SIMD16<UInt8>.self)
                    let low1 = ql.loadUnaligned(fromByteOffset: 32 + 16 * h, as: SIMD16<UInt8>.self)
                    let high = qh.loadUnaligned(fromByteOffset: 16 * h, as: SIMD16<UInt8>.self)
                    let q1 = (low0 & 0x0F) | ((high & 3) &<< 4)
                    let q2 = (low1 & 0x0F) | (((high &>> 2) & 3) &<< 4)
                    let q3 = (low0 &>> 4) | (((high &>> 4) & 3) &<< 4)
                    let q4 = (low1 &>> 4) | (((high &>> 6) & 3) &<< 4)
                    sumi += Int32(sc[h]) * dot16(SIMD16<Int16>(truncatingIfNeeded: q1) &- 32, an + 16 * h)
                    sumi += Int32(sc[h + 2]) * dot16(SIMD16<Int16>(truncatingIfNeeded: q2) &- 32, an + 32 + 16 * h)
                    sumi += Int32(sc[h + 4]) * dot16(SIMD16<Int16>(truncatingIfNeeded: q3) &- 32, an + 64 + 16 * h)
                    sumi += Int32(sc[h + 6]) * dot16(SIMD16<Int16>(truncatingIfNeeded: q4) &- 32, an + 96 + 16 * h)
                }
            }
            sum += half(block, 208) * a.scales[b] * Float(sumi)
        }
        return sum
    }
}
