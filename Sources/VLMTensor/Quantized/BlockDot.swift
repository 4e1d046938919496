// Dot products of one weight row (in its stored block format) with one prepared activation row.
//
// Each kernel mirrors ggml's `ggml_vec_dot_<weight>_<activation>`: integer products inside a block,
// one float multiply-add per block with the two scales. The integer part is exact, so results differ
// from ggml only in the order floats are summed.

/// A 32-value block format as the generic kernels see it.
protocol Block32 {
    static var bytes: Int { get }
    /// Blocks carry a minimum m (x = d*q + m), multiplied with the activation's block sums.
    static var hasMinimum: Bool { get }
    static func unpack(_ block: UnsafeRawPointer) -> BlockDot.Unpacked32
}

extension Block32 {
    @inline(__always)
    static func scale(_ block: UnsafeRawPointer) -> Float { halfToFloat(block.loadUnaligned(as: UInt16.self)) }
    @inline(__always)
    static func minimum(_ block: UnsafeRawPointer) -> Float { halfToFloat(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) }
}

enum Q8_0Block: Block32 {
    static var bytes: Int { 34 }
    static var hasMinimum: Bool { false }
    @inline(__always) static func unpack(_ block: UnsafeRawPointer) -> BlockDot.Unpacked32 { .init(int8: block + 2) }
}

enum Q4_0Block: Block32 {
    static var bytes: Int { 18 }
    static var hasMinimum: Bool { false }
    @inline(__always) static func unpack(_ block: UnsafeRawPointer) -> BlockDot.Unpacked32 { .init(nibbles: block + 2, offset: 8) }
}

enum Q4_1Block: Block32 {
    static var bytes: Int { 20 }
    static var hasMinimum: Bool { true }
    @inline(__always) static func unpack(_ block: UnsafeRawPointer) -> BlockDot.Unpacked32 { .init(nibbles: block + 4, offset: 0) }
}

enum Q5_0Block: Block32 {
    static var bytes: Int { 22 }
    static var hasMinimum: Bool { false }
    @inline(__always) static func unpack(_ block: UnsafeRawPointer) -> BlockDot.Unpacked32 {
        .init(nibbles: block + 6, highBits: block.loadUnaligned(fromByteOffset: 2, as: UInt32.self), offset: 16)
    }
}

enum Q5_1Block: Block32 {
    static var bytes: Int { 24 }
    static var hasMinimum: Bool { true }
    @inline(__always) static func unpack(_ block: UnsafeRawPointer) -> BlockDot.Unpacked32 {
        .init(nibbles: block + 8, highBits: block.loadUnaligned(fromByteOffset: 4, as: UInt32.self), offset: 0)
    }
}

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

extension QuantizedActivation {
    /// Views of each of `rows` equal-length rows converted together (blocks never straddle rows, so a
    /// batch quantises as one long row).
    func withViews<R>(rows: Int, _ body: ([ActivationView]) throws -> R) rethrows -> R {
        try withView { v in
            try body((0..<rows).map { r in
                ActivationView(scales: v.scales + r * (scales.count / rows), blockSums: v.blockSums + r * (blockSums.count / rows),
                               groupSums: v.groupSums + r * (groupSums.count / rows), quants: v.quants + r * (quants.count / rows),
                               splitQuants: v.splitQuants + r * (splitQuants.count / rows) * 2,
                               values: v.values + r * (values.count / rows))
            })
        }
    }
}

extension Array where Element: Numeric {
    fileprivate func withUnsafeBufferPointerOrDummy<R>(_ body: (UnsafePointer<Element>) throws -> R) rethrows -> R {
        if isEmpty { return try [Element.zero].withUnsafeBufferPointer { try body($0.baseAddress!) } }
        return try withUnsafeBufferPointer { try body($0.baseAddress!) }
    }
}

enum BlockDot {
    /// Dispatches on the weight format; `columns` is the row length in values.
    @inline(__always)
    static func dot(_ format: WeightFormat, row: UnsafeRawPointer, _ a: ActivationView, columns: Int,
                    repacked: Bool = false) -> Float {
        switch format {
        case .q4_K where repacked: return dotQ4_KInterleaved(row, a, blocks: columns / 256)
        case .f32: return dotF32(row.assumingMemoryBound(to: Float.self), a.values, columns)
        case .f16: return dotF16(row.assumingMemoryBound(to: UInt16.self), a.values, columns)
        case .bf16: return dotBF16(row.assumingMemoryBound(to: UInt16.self), a.values, columns)
        case .q8_0: return dotQ8_0(row, a, blocks: columns / 32)
        case .q4_0: return dotQ4_0(row, a, blocks: columns / 32)
        case .q4_1: return dotQ4_1(row, a, blocks: columns / 32)
        case .q5_0: return dot(Q5_0Block.self, row, a, columns / 32)
        case .q5_1: return dot(Q5_1Block.self, row, a, columns / 32)
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: return dotKQuant(format, row, a, blocks: columns / 256)
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
    // into a float lane accumulator; the lanes are summed with `hsum_float_8` at the end. For q4_1 the
    // m_w * s_a terms (s_a = d_a * sum(q_a)) are summed separately and added last.
    // The kernels are generic over the block format so each is compiled without format checks inside
    // the loop.

    static func dotQ8_0(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float { dot(Q8_0Block.self, row, a, blocks) }
    static func dotQ4_0(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float { dot(Q4_0Block.self, row, a, blocks) }
    static func dotQ4_1(_ row: UnsafeRawPointer, _ a: ActivationView, blocks: Int) -> Float { dot(Q4_1Block.self, row, a, blocks) }

    static func dot<F: Block32>(_: F.Type, _ row: UnsafeRawPointer, _ a: ActivationView, _ blocks: Int) -> Float {
        var acc = SIMD8<Float>(), minimum: Float = 0
        for j in 0..<blocks {
            let block = row + j * F.bytes
            if F.hasMinimum { minimum = fusedMultiplyAdd(F.minimum(block), a.blockSums[j], minimum) }
            acc = accumulate(acc, scale: F.scale(block) * a.scales[j], F.unpack(block).laneSums(a.block32(j)))
        }
        return horizontalSum8(acc) + minimum
    }

    /// One weight row against several activation rows (a prefill batch), with the same arithmetic per
    /// activation as `dot`. `batch`: the size of the whole batch `views` belong to (llama.cpp picks the
    /// K-quant orders by it), when they are its rest after a tile.
    static func dotBatch(_ format: WeightFormat, row: UnsafeRawPointer, _ views: UnsafeBufferPointer<ActivationView>,
                         columns: Int, repacked: Bool = false, batch: Int? = nil, into out: (Int, Float) -> Void) {
        let batch = batch ?? views.count
        switch format {
        case .q8_0: dotBatch(Q8_0Block.self, row, views, columns / 32, out)
        case .q4_0: dotBatch(Q4_0Block.self, row, views, columns / 32, out)
        case .q4_1: dotBatch(Q4_1Block.self, row, views, columns / 32, out)
        case .q5_0: dotBatch(Q5_0Block.self, row, views, columns / 32, out)
        case .q5_1: dotBatch(Q5_1Block.self, row, views, columns / 32, out)
        case .q4_K where repacked && batch > 3:
            // llama.cpp's repacked q4_K: the gemm order for whole groups of four rows, the gemv for the rest.
            let gemmRows = views.count - views.count % 4
            for b in stride(from: 0, to: gemmRows, by: 4) {
                let four = dotQ4_KInterleaved4(row, views, first: b, blocks: columns / 256)
                for i in 0..<4 { out(b + i, four[i]) }
            }
            for b in gemmRows..<views.count { out(b, dotQ4_KInterleaved(row, views[b], blocks: columns / 256)) }
        case .q6_K where batch >= tiledMinimumBatch:
            let fours = views.count - views.count % 4
            for b in stride(from: 0, to: fours, by: 4) {
                let four = dotQ6_KTiled4(row, views, first: b, blocks: columns / 256)
                for i in 0..<4 { out(b + i, four[i]) }
            }
            for b in fours..<views.count { out(b, dotQ6_KTiled(row, views[b], blocks: columns / 256)) }
        case .q4_K where batch >= tiledMinimumBatch, .q5_K where batch >= tiledMinimumBatch:
            for (b, view) in views.enumerated() { out(b, dotKQuantWithMinsTiled(format, row, view, blocks: columns / 256)) }
        default: for (b, view) in views.enumerated() { out(b, dot(format, row: row, view, columns: columns, repacked: repacked)) }
        }
    }

    /// The batch size (activation rows) from which llama.cpp's CPU backend multiplies K-quant matrices
    /// that are not repacked with its tiled kernel instead of `ggml_vec_dot_*` (`ggml_tiled_min_batch`).
    /// The tiled order is reproduced for q4_K (when not repacked), q5_K and q6_K; q2_K and q3_K still
    /// use the vec_dot order here.
    static let tiledMinimumBatch = 8

    static func dotBatch<F: Block32>(_: F.Type, _ row: UnsafeRawPointer, _ views: UnsafeBufferPointer<ActivationView>,
                                     _ blocks: Int, _ out: (Int, Float) -> Void) {
        // Four activations at a time keep their accumulators in registers; a block is unpacked
        // once per four.
        var b = 0
        while b + 4 <= views.count {
            let v0 = views[b], v1 = views[b + 1], v2 = views[b + 2], v3 = views[b + 3]
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var m0: Float = 0, m1: Float = 0, m2: Float = 0, m3: Float = 0
            for j in 0..<blocks {
                let block = row + j * F.bytes, d = F.scale(block), w = F.unpack(block)
                if F.hasMinimum {
                    let m = F.minimum(block)
                    m0 = fusedMultiplyAdd(m, v0.blockSums[j], m0); m1 = fusedMultiplyAdd(m, v1.blockSums[j], m1)
                    m2 = fusedMultiplyAdd(m, v2.blockSums[j], m2); m3 = fusedMultiplyAdd(m, v3.blockSums[j], m3)
                }
                a0 = accumulate(a0, scale: d * v0.scales[j], w.laneSums(v0.block32(j)))
                a1 = accumulate(a1, scale: d * v1.scales[j], w.laneSums(v1.block32(j)))
                a2 = accumulate(a2, scale: d * v2.scales[j], w.laneSums(v2.block32(j)))
                a3 = accumulate(a3, scale: d * v3.scales[j], w.laneSums(v3.block32(j)))
            }
            out(b, horizontalSum8(a0) + m0); out(b + 1, horizontalSum8(a1) + m1)
            out(b + 2, horizontalSum8(a2) + m2); out(b + 3, horizontalSum8(a3) + m3)
            b += 4
        }
        while b < views.count {
            out(b, dot(F.self, row, views[b], blocks))
            b += 1
        }
    }

    /// Four weight rows, as pointers.
    typealias Rows4 = (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer)

    /// Four weight rows against several activation rows (a prefill batch): `out(i, b, value)` for row i
    /// (0..<4) and activation b, with the same arithmetic per product as `dot`. The VNNI 4 x 4 tiles take
    /// what they can; two pair tiles take the rest.
    static func dotBatchQuad(_ format: WeightFormat, _ rows: Rows4, _ views: UnsafeBufferPointer<ActivationView>,
                             columns: Int, repacked: Bool = false, into out: (Int, Int, Float) -> Void) {
        let tiled = vnniTileQuads(format, rows, views, columns: columns, repacked: repacked, out)
        let rest = UnsafeBufferPointer(rebasing: views[tiled...])
        guard !rest.isEmpty else { return }
        dotBatchPair(format, rows.0, rows.1, rest, columns: columns, repacked: repacked, batch: views.count) { out($0, $1 + tiled, $2) }
        dotBatchPair(format, rows.2, rows.3, rest, columns: columns, repacked: repacked, batch: views.count) { out($0 + 2, $1 + tiled, $2) }
    }

    /// Two weight rows against several activation rows (a prefill batch): `out(i, b, value)` for row i
    /// (0 or 1) and activation b, with the same arithmetic per product as `dot` (`batch` as in `dotBatch`).
    static func dotBatchPair(_ format: WeightFormat, _ row0: UnsafeRawPointer, _ row1: UnsafeRawPointer,
                             _ views: UnsafeBufferPointer<ActivationView>, columns: Int, repacked: Bool = false,
                             batch: Int? = nil, into out: (Int, Int, Float) -> Void) {
        switch format {
        case .q8_0: dotBatchPair(Q8_0Block.self, row0, row1, views, columns / 32, out)
        case .q4_0: dotBatchPair(Q4_0Block.self, row0, row1, views, columns / 32, out)
        case .q4_1: dotBatchPair(Q4_1Block.self, row0, row1, views, columns / 32, out)
        case .q5_0: dotBatchPair(Q5_0Block.self, row0, row1, views, columns / 32, out)
        case .q5_1: dotBatchPair(Q5_1Block.self, row0, row1, views, columns / 32, out)
        default:
            dotBatch(format, row: row0, views, columns: columns, repacked: repacked, batch: batch) { out(0, $0, $1) }
            dotBatch(format, row: row1, views, columns: columns, repacked: repacked, batch: batch) { out(1, $0, $1) }
        }
    }

    /// Tiles of 2 weight rows x 4 activations: each block of weights is unpacked once per four
    /// activations and each activation block loaded once per two rows; eight accumulators stay in
    /// registers.
    static func dotBatchPair<F: Block32>(_: F.Type, _ row0: UnsafeRawPointer, _ row1: UnsafeRawPointer,
                                         _ views: UnsafeBufferPointer<ActivationView>, _ blocks: Int,
                                         _ out: (Int, Int, Float) -> Void) {
        var b = 0
        while b + 4 <= views.count {
            let v = (views[b], views[b + 1], views[b + 2], views[b + 3])
            var acc0 = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
            var acc1 = acc0
            var min0 = SIMD4<Float>(), min1 = SIMD4<Float>()
            for j in 0..<blocks {
                let block0 = row0 + j * F.bytes, block1 = row1 + j * F.bytes
                let d0 = F.scale(block0), d1 = F.scale(block1), w0 = F.unpack(block0), w1 = F.unpack(block1)
                let da = SIMD4(v.0.scales[j], v.1.scales[j], v.2.scales[j], v.3.scales[j])
                if F.hasMinimum {
                    let s = SIMD4(v.0.blockSums[j], v.1.blockSums[j], v.2.blockSums[j], v.3.blockSums[j])
                    min0 = min0.addingProduct(SIMD4(repeating: F.minimum(block0)), s)
                    min1 = min1.addingProduct(SIMD4(repeating: F.minimum(block1)), s)
                }
                let s0 = d0 * da, s1 = d1 * da
                let a0 = v.0.block32(j), a1 = v.1.block32(j), a2 = v.2.block32(j), a3 = v.3.block32(j)
                acc0.0 = accumulate(acc0.0, scale: s0[0], w0.laneSums(a0)); acc1.0 = accumulate(acc1.0, scale: s1[0], w1.laneSums(a0))
                acc0.1 = accumulate(acc0.1, scale: s0[1], w0.laneSums(a1)); acc1.1 = accumulate(acc1.1, scale: s1[1], w1.laneSums(a1))
                acc0.2 = accumulate(acc0.2, scale: s0[2], w0.laneSums(a2)); acc1.2 = accumulate(acc1.2, scale: s1[2], w1.laneSums(a2))
                acc0.3 = accumulate(acc0.3, scale: s0[3], w0.laneSums(a3)); acc1.3 = accumulate(acc1.3, scale: s1[3], w1.laneSums(a3))
            }
            out(0, b, horizontalSum8(acc0.0) + min0[0]); out(1, b, horizontalSum8(acc1.0) + min1[0])
            out(0, b + 1, horizontalSum8(acc0.1) + min0[1]); out(1, b + 1, horizontalSum8(acc1.1) + min1[1])
            out(0, b + 2, horizontalSum8(acc0.2) + min0[2]); out(1, b + 2, horizontalSum8(acc1.2) + min1[2])
            out(0, b + 3, horizontalSum8(acc0.3) + min0[3]); out(1, b + 3, horizontalSum8(acc1.3) + min1[3])
            b += 4
        }
        while b < views.count {
            out(0, b, dot(F.self, row0, views[b], blocks)); out(1, b, dot(F.self, row1, views[b], blocks))
            b += 1
        }
    }

    /// acc + scale * lanes per lane with one rounding (`_mm256_fmadd_ps` of `_mm256_cvtepi32_ps`).
    @inline(__always)
    static func accumulate(_ acc: SIMD8<Float>, scale: Float, _ lanes: SIMD8<Int32>) -> SIMD8<Float> {
        acc.addingProduct(SIMD8(repeating: scale), laneFloats(lanes))
    }

    /// The 6-bit scale and min of sub-block `j` (0..<8) of a q4_K block (`get_scale_min_k4`).
    @inline(__always)
    static func q4KScaleMin(_ s: UnsafeRawPointer, _ j: Int) -> (scale: Int32, min: Int32) {
        let q = s.assumingMemoryBound(to: UInt8.self)
        if j < 4 { return (Int32(q[j] & 63), Int32(q[j + 4] & 63)) }
        return (Int32((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4)), Int32((q[j + 4] >> 4) | ((q[j] >> 6) << 4)))
    }
}
