// Expanding one stored row to Float (ggml's `dequantize_row_*`). Used for embedding look-ups and tests,
// never for whole matrices at load time.

enum Dequantize {
    static func row(_ format: WeightFormat, _ src: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>, columns: Int) {
        switch format {
        case .f32: y.update(from: src.assumingMemoryBound(to: Float.self), count: columns)
        case .f16:
            let h = src.assumingMemoryBound(to: UInt16.self)
            for i in 0..<columns { y[i] = halfToFloat(h[i]) }
        case .bf16:
            let h = src.assumingMemoryBound(to: UInt16.self)
            for i in 0..<columns { y[i] = bfloat16ToFloat(h[i]) }
        case .q8_0:
            for b in 0..<columns / 32 {
                let block = src + b * 34, d = halfToFloat(block.loadUnaligned(as: UInt16.self))
                let q = (block + 2).assumingMemoryBound(to: Int8.self)
                for j in 0..<32 { y[b * 32 + j] = d * Float(q[j]) }
            }
        case .q4_0, .q4_1:
            let isQ4_1 = format == .q4_1, size = isQ4_1 ? 20 : 18
            for b in 0..<columns / 32 {
                let block = src + b * size, d = halfToFloat(block.loadUnaligned(as: UInt16.self))
                let m = isQ4_1 ? halfToFloat(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) : 0
                let offset: Int32 = isQ4_1 ? 0 : 8
                let q = (block + (isQ4_1 ? 4 : 2)).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    y[b * 32 + j] = d * Float(Int32(q[j] & 0x0F) - offset) + m
                    y[b * 32 + j + 16] = d * Float(Int32(q[j] >> 4) - offset) + m
                }
            }
        case .q4_K:
            for b in 0..<columns / 256 {
                let block = src + b * 144, out = y + b * 256
                let d = halfToFloat(block.loadUnaligned(as: UInt16.self))
                let dmin = halfToFloat(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
                let q = (block + 16).assumingMemoryBound(to: UInt8.self)
                for j in 0..<4 {
                    let (sc0, m0) = BlockDot.q4KScaleMin(block + 4, 2 * j)
                    let (sc1, m1) = BlockDot.q4KScaleMin(block + 4, 2 * j + 1)
                    for l in 0..<32 {
                        out[64 * j + l] = d * Float(sc0) * Float(q[32 * j + l] & 0x0F) - dmin * Float(m0)
                        out[64 * j + 32 + l] = d * Float(sc1) * Float(q[32 * j + l] >> 4) - dmin * Float(m1)
                    }
                }
            }
        case .q6_K:
            for b in 0..<columns / 256 {
                let block = src + b * 210, out = y + b * 256
                let d = halfToFloat(block.loadUnaligned(fromByteOffset: 208, as: UInt16.self))
                for n in 0..<2 {
                    let ql = (block + 64 * n).assumingMemoryBound(to: UInt8.self)
                    let qh = (block + 128 + 32 * n).assumingMemoryBound(to: UInt8.self)
                    let sc = (block + 192 + 8 * n).assumingMemoryBound(to: Int8.self)
                    for l in 0..<32 {
                        let s = l / 16
                        let q1 = Int32((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32
                        let q2 = Int32((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32
                        let q3 = Int32((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32
                        let q4 = Int32((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32
                        out[128 * n + l] = d * Float(sc[s]) * Float(q1)
                        out[128 * n + 32 + l] = d * Float(sc[s + 2]) * Float(q2)
                        out[128 * n + 64 + l] = d * Float(sc[s + 4]) * Float(q3)
                        out[128 * n + 96 + l] = d * Float(sc[s + 6]) * Float(q4)
                    }
                }
            }
        }
    }
}
