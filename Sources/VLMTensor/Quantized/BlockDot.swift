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
    let splitQuants: UnsafeRawPointer
    let values: UnsafePointer<Float>
}

extension QuantizedActivation {
    public func withView<R>(_ body: (ActivationView) throws -> R) rethrows -> R {
        // Empty arrays still give a (dangling but never read) base address via a one-element stand-in.
        try scales.withUnsafeBufferPointerOrDummy { s in
            try blockSums.withUnsafeBufferPointerOrDummy { bs in
                try groupSums.withUnsafeBufferPointerOrDummy { gs in
                    try quants.withUnsafeBufferPointerOrDummy { q in
                        try splitQuants.withUnsafeBufferPointerOrDummy { sq in
                            try values.withUnsafeBufferPointerOrDummy { v in
                                try body(ActivationView(scales: s, blockSums: bs, groupSums: gs, quants: UnsafeRawPointer(q),
                                                        splitQuants: UnsafeRawPointer(sq), values: v))
                            }
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
    // The integer work uses 16-bit lanes split into even and odd elements by shifts (what `pmaddubsw`
    // and `pmaddwd` do in hardware), with same-type SIMD operations the compiler lowers directly.

    static func dotQ8_0(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let block = row + b * 34
            let w = Unpacked32(int8: block + 2)
            acc = accumulate(acc, scale: half(block, 0) * a.scales[b], w.laneSums(a.splitQuants + b * 64))
        }
        return horizontalSum8(acc)
    }

    static func dotQ4_0(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let block = row + b * 18
            let w = Unpacked32(nibbles: block + 2, offset: 8)
            acc = accumulate(acc, scale: half(block, 0) * a.scales[b], w.laneSums(a.splitQuants + b * 64))
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
            let w = Unpacked32(nibbles: block + 4, offset: 0)
            acc = accumulate(acc, scale: half(block, 0) * a.scales[b], w.laneSums(a.splitQuants + b * 64))
        }
        return horizontalSum8(acc) + minimumTerms
    }

    /// Two weight rows against one activation row (matrix-vector products): the same arithmetic as
    /// two `dot` calls, interleaved so the two accumulator chains overlap in the pipeline.
    static func dotPair(_ format: WeightFormat, _ row0: UnsafeRawPointer, _ row1: UnsafeRawPointer, _ a: ActivationView,
                        columns: Int) -> (Float, Float) {
        let (blockBytes, quantOffset): (Int, Int)
        switch format {
        case .q8_0: (blockBytes, quantOffset) = (34, 2)
        case .q4_0: (blockBytes, quantOffset) = (18, 2)
        case .q4_1: (blockBytes, quantOffset) = (20, 4)
        default: return (dot(format, row: row0, a, columns: columns), dot(format, row: row1, a, columns: columns))
        }
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var minimum0: Float = 0, minimum1: Float = 0
        for j in 0..<columns / 32 {
            let b0 = row0 + j * blockBytes, b1 = row1 + j * blockBytes, aq = a.splitQuants + j * 64, da = a.scales[j]
            let w0: Unpacked32, w1: Unpacked32
            if format == .q8_0 {
                w0 = Unpacked32(int8: b0 + quantOffset); w1 = Unpacked32(int8: b1 + quantOffset)
            } else {
                let offset: Int16 = format == .q4_0 ? 8 : 0
                w0 = Unpacked32(nibbles: b0 + quantOffset, offset: offset); w1 = Unpacked32(nibbles: b1 + quantOffset, offset: offset)
            }
            if format == .q4_1 {
                minimum0 = fusedMultiplyAdd(half(b0, 2), a.blockSums[j], minimum0)
                minimum1 = fusedMultiplyAdd(half(b1, 2), a.blockSums[j], minimum1)
            }
            acc0 = accumulate(acc0, scale: half(b0, 0) * da, w0.laneSums(aq))
            acc1 = accumulate(acc1, scale: half(b1, 0) * da, w1.laneSums(aq))
        }
        return (horizontalSum8(acc0) + minimum0, horizontalSum8(acc1) + minimum1)
    }

    /// One weight row against several activation rows (a prefill batch): each block is unpacked once
    /// and applied to every activation, with per-activation accumulators (same arithmetic as `dot`).
    static func dotBatch(_ format: WeightFormat, row: UnsafeRawPointer, _ views: UnsafeBufferPointer<ActivationView>,
                         columns: Int, accumulators: UnsafeMutablePointer<SIMD8<Float>>,
                         minimumTerms: UnsafeMutablePointer<Float>, into out: (Int, Float) -> Void) {
        let (blockBytes, quantOffset): (Int, Int)
        switch format {
        case .q8_0: (blockBytes, quantOffset) = (34, 2)
        case .q4_0: (blockBytes, quantOffset) = (18, 2)
        case .q4_1: (blockBytes, quantOffset) = (20, 4)
        default:
            for (b, view) in views.enumerated() { out(b, dot(format, row: row, view, columns: columns)) }
            return
        }
        let n = views.count
        for b in 0..<n { accumulators[b] = SIMD8<Float>(); minimumTerms[b] = 0 }
        for j in 0..<columns / 32 {
            let block = row + j * blockBytes, d = half(block, 0)
            let w = format == .q8_0 ? Unpacked32(int8: block + quantOffset)
                : Unpacked32(nibbles: block + quantOffset, offset: format == .q4_0 ? 8 : 0)
            if format == .q4_1 {
                let m = half(block, 2)
                for b in 0..<n { minimumTerms[b] = fusedMultiplyAdd(m, views[b].blockSums[j], minimumTerms[b]) }
            }
            for b in 0..<n {
                accumulators[b] = accumulate(accumulators[b], scale: d * views[b].scales[j], w.laneSums(views[b].splitQuants + j * 64))
            }
        }
        for b in 0..<n { out(b, horizontalSum8(accumulators[b]) + (format == .q4_1 ? minimumTerms[b] : 0)) }
    }

    /// A block of 32 small signed weights, as its even-indexed and odd-indexed elements
    /// (lane m of `even` is element 2m, of `odd` element 2m+1).
    struct Unpacked32 {
        let even: SIMD16<Int16>, odd: SIMD16<Int16>

        /// 32 int8 (q8_0).
        @inline(__always)
        init(int8 p: UnsafeRawPointer) {
            let v = p.loadUnaligned(as: SIMD16<Int16>.self)
            even = (v &<< 8) &>> 8
            odd = v &>> 8
        }

        /// 16 bytes of nibbles: element i is the low nibble of byte i, element 16+i its high nibble.
        @inline(__always)
        init(nibbles p: UnsafeRawPointer, offset: Int16) {
            let packed = p.loadUnaligned(as: SIMD8<Int16>.self)  // lane m: byte 2m low, byte 2m+1 high
            let both = SIMD16(lowHalf: packed, highHalf: packed &>> 4)
            even = (both & 0x000F) &- offset
            odd = ((both &>> 8) & 0x000F) &- offset
        }

        /// Eight int32 lanes; lane k = sum of w[j] * a[j] for j in 4k..<4k+4, for a block of activations
        /// in `splitQuants` layout (16 even-indexed then 16 odd-indexed Int16).
        @inline(__always)
        func laneSums(_ a: UnsafeRawPointer) -> SIMD8<Int32> {
            let aEven = a.loadUnaligned(as: SIMD16<Int16>.self), aOdd = a.loadUnaligned(fromByteOffset: 32, as: SIMD16<Int16>.self)
            // Two products fit Int16 (|q| <= 127); the pairs are widened before adding four.
            let pairs = even &* aEven &+ odd &* aOdd
            let words = unsafeBitCast(pairs, to: SIMD8<Int32>.self)
            return ((words &<< 16) &>> 16) &+ (words &>> 16)
        }
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
