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
                let q = (block + (isQ4_1 ? 4 : 2)).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    // q4_0 has no "+ m": adding 0 would turn -0 into +0.
                    y[b * 32 + j] = isQ4_1 ? d * Float(q[j] & 0x0F) + m : d * Float(Int32(q[j] & 0x0F) - 8)
                    y[b * 32 + j + 16] = isQ4_1 ? d * Float(q[j] >> 4) + m : d * Float(Int32(q[j] >> 4) - 8)
                }
            }
        case .q5_0, .q5_1:
            let isQ5_1 = format == .q5_1, size = isQ5_1 ? 24 : 22
            for b in 0..<columns / 32 {
                let block = src + b * size, d = halfToFloat(block.loadUnaligned(as: UInt16.self))
                let m = isQ5_1 ? halfToFloat(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) : 0
                let qh = block.loadUnaligned(fromByteOffset: isQ5_1 ? 4 : 2, as: UInt32.self)
                let q = (block + (isQ5_1 ? 8 : 6)).assumingMemoryBound(to: UInt8.self)
                let offset: Int32 = isQ5_1 ? 0 : 16
                for j in 0..<16 {
                    let x0 = Int32(q[j] & 0x0F) | Int32((qh >> UInt32(j)) & 1) << 4
                    let x1 = Int32(q[j] >> 4) | Int32((qh >> UInt32(j + 16)) & 1) << 4
                    // q5_0 has no "+ m": adding 0 would turn -0 into +0.
                    y[b * 32 + j] = isQ5_1 ? Float(x0) * d + m : Float(x0 - offset) * d
                    y[b * 32 + j + 16] = isQ5_1 ? Float(x1) * d + m : Float(x1 - offset) * d
                }
            }
        case .q2_K:
            for b in 0..<columns / 256 {
                let block = src + b * 84, out = y + b * 256
                let sc = block.assumingMemoryBound(to: UInt8.self), q = (block + 16).assumingMemoryBound(to: UInt8.self)
                let d = halfToFloat(block.loadUnaligned(fromByteOffset: 80, as: UInt16.self))
                let dmin = halfToFloat(block.loadUnaligned(fromByteOffset: 82, as: UInt16.self))
                for i in 0..<256 {  // i = 128n + 32j + 16h + l, scale index 8n + 2j + h
                    let n = i / 128, j = (i % 128) / 32, h = (i % 32) / 16, l = i % 16
                    let s = sc[8 * n + 2 * j + h], bits = (q[32 * n + 16 * h + l] >> UInt8(2 * j)) & 3
                    out[i] = d * Float(s & 0xF) * Float(bits) - dmin * Float(s >> 4)
                }
            }
        case .q3_K:
            for b in 0..<columns / 256 {
                let block = src + b * 110, out = y + b * 256
                let hm = block.assumingMemoryBound(to: UInt8.self), q = (block + 32).assumingMemoryBound(to: UInt8.self)
                let scales = BlockDot.q3KScales(block + 96)
                let d = halfToFloat(block.loadUnaligned(fromByteOffset: 108, as: UInt16.self))
                for i in 0..<256 {
                    let n = i / 128, j = (i % 128) / 32, h = (i % 32) / 16, l = i % 16, e = 16 * h + l
                    let low = Int32((q[32 * n + e] >> UInt8(2 * j)) & 3)
                    let high: Int32 = hm[e] & (1 << UInt8(4 * n + j)) != 0 ? 0 : 4
                    out[i] = d * Float(scales[8 * n + 2 * j + h]) * Float(low - high)
                }
            }
        case .q5_K:
            for b in 0..<columns / 256 {
                let block = src + b * 176, out = y + b * 256
                let d = halfToFloat(block.loadUnaligned(as: UInt16.self))
                let dmin = halfToFloat(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
                let qh = (block + 16).assumingMemoryBound(to: UInt8.self), q = (block + 48).assumingMemoryBound(to: UInt8.self)
                for j in 0..<4 {
                    let (sc0, m0) = BlockDot.q4KScaleMin(block + 4, 2 * j)
                    let (sc1, m1) = BlockDot.q4KScaleMin(block + 4, 2 * j + 1)
                    for l in 0..<32 {
                        let h0: Int32 = qh[l] & (1 << UInt8(2 * j)) != 0 ? 16 : 0
                        let h1: Int32 = qh[l] & (2 << UInt8(2 * j)) != 0 ? 16 : 0
                        out[64 * j + l] = d * Float(sc0) * Float(Int32(q[32 * j + l] & 0x0F) + h0) - dmin * Float(m0)
                        out[64 * j + 32 + l] = d * Float(sc1) * Float(Int32(q[32 * j + l] >> 4) + h1) - dmin * Float(m1)
                    }
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
