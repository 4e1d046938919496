/// Pillow's resize (`Image.resize`, src/libImaging/Resample.c), reproduced bit-exactly for 8-bit RGB.
///
/// Why bit-exact: CLIP's reference preprocessing runs torchvision's Resize on a PIL image, which calls
/// Pillow. A different resampler shifts pixel values by a few levels and the embeddings by more than
/// parity tolerances allow.
///
/// Pillow's algorithm, as implemented below:
///  1. Separable convolution: a horizontal pass (only over the source rows the vertical pass will read),
///     stored as uint8, then a vertical pass. A pass is skipped when that dimension does not change.
///  2. Per output sample the filter is centred at `(i + 0.5) * scale` in source coordinates. When
///     downscaling (`scale > 1`) the filter is stretched by `scale` (antialiasing) and its support grows.
///  3. Weights are computed in double, normalised to sum to 1, then rounded to fixed point with 22
///     fractional bits. Each output is `clip((2^21 + Σ pixel·weight) >> 22)` to 0...255.
public enum ResampleFilter: String, Sendable, CaseIterable {
    /// Cubic convolution with a = -0.5 (Keys), support 2 — Pillow's BICUBIC.
    case bicubic
    /// Triangle filter, support 1 — Pillow's BILINEAR.
    case bilinear

    var support: Double {
        switch self {
        case .bicubic: 2.0
        case .bilinear: 1.0
        }
    }

    /// The filter kernel. The arithmetic follows Pillow's order of operations so doubles round the same way.
    func weight(_ t: Double) -> Double {
        let x = abs(t)
        switch self {
        case .bicubic:
            let a = -0.5
            if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
            if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0.0
        case .bilinear:
            return x < 1.0 ? 1.0 - x : 0.0
        }
    }
}

/// The fixed-point weights of one axis: for output index i, source samples `start[i] ..< start[i] + count[i]`
/// weighted by `weights[i * stride ..< i * stride + count[i]]`.
struct ResampleWeights {
    static let precisionBits = 32 - 8 - 2

    let start: [Int]
    let count: [Int]
    let stride: Int
    let weights: [Int32]

    init(inputSize: Int, outputSize: Int, filter: ResampleFilter) {
        let scale = Double(inputSize) / Double(outputSize)
        let filterScale = max(scale, 1.0)
        let support = filter.support * filterScale
        let stride = Int(support.rounded(.up)) * 2 + 1
        var start = [Int](repeating: 0, count: outputSize)
        var count = [Int](repeating: 0, count: outputSize)
        var weights = [Int32](repeating: 0, count: outputSize * stride)
        let one = Double(1 << Self.precisionBits)
        for i in 0..<outputSize {
            let center = (Double(i) + 0.5) * scale
            let inverseScale = 1.0 / filterScale
            // Int(_:) truncates toward zero like Pillow's C casts.
            let first = max(0, Int(center - support + 0.5))
            let end = min(inputSize, Int(center + support + 0.5))
            var kernel = (first..<end).map { filter.weight((Double($0) - center + 0.5) * inverseScale) }
            let total = kernel.reduce(0.0, +)
            if total != 0.0 { kernel = kernel.map { $0 / total } }
            for (j, k) in kernel.enumerated() {
                weights[i * stride + j] = k < 0 ? Int32(-0.5 + k * one) : Int32(0.5 + k * one)
            }
            start[i] = first
            count[i] = end - first
        }
        self.start = start
        self.count = count
        self.stride = stride
        self.weights = weights
    }

    /// Rounds a fixed-point accumulator back to a byte the way Pillow's clip8 does.
    @inline(__always) static func clip8(_ accumulator: Int) -> UInt8 {
        UInt8(clamping: accumulator >> precisionBits)
    }
}

extension RGBImage {
    /// This image resized to `width` x `height` exactly as Pillow's `Image.resize((width, height), filter)`.
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResampleFilter) -> RGBImage {
        precondition(newWidth > 0 && newHeight > 0, "resize to \(newWidth)x\(newHeight)")
        let vertical = ResampleWeights(inputSize: height, outputSize: newHeight, filter: filter)
        var source = self
        var rowOffset = 0
        if newWidth != width {
            // Only the source rows some output row reads are resampled horizontally.
            let firstRow = vertical.start[0]
            let endRow = vertical.start[newHeight - 1] + vertical.count[newHeight - 1]
            source = horizontalPass(rows: firstRow..<endRow, to: newWidth, filter: filter)
            rowOffset = firstRow
        }
        guard newHeight != height else { return source }
        return source.verticalPass(vertical, rowOffset: rowOffset)
    }

    private func horizontalPass(rows: Range<Int>, to newWidth: Int, filter: ResampleFilter) -> RGBImage {
        let w = ResampleWeights(inputSize: width, outputSize: newWidth, filter: filter)
        var out = [UInt8](repeating: 0, count: rows.count * newWidth * 3)
        pixels.withUnsafeBufferPointer { src in
            w.weights.withUnsafeBufferPointer { k in
                out.withUnsafeMutableBufferPointer { dst in
                    for (outRow, row) in rows.enumerated() {
                        let rowBase = row * width * 3
                        for x in 0..<newWidth {
                            var r = 1 << (ResampleWeights.precisionBits - 1), g = r, b = r
                            let kBase = x * w.stride
                            for j in 0..<w.count[x] {
                                let p = rowBase + (w.start[x] + j) * 3
                                let weight = Int(k[kBase + j])
                                r += Int(src[p]) * weight
                                g += Int(src[p + 1]) * weight
                                b += Int(src[p + 2]) * weight
                            }
                            let o = (outRow * newWidth + x) * 3
                            dst[o] = ResampleWeights.clip8(r)
                            dst[o + 1] = ResampleWeights.clip8(g)
                            dst[o + 2] = ResampleWeights.clip8(b)
                        }
                    }
                }
            }
        }
        return RGBImage(width: newWidth, height: rows.count, pixels: out)
    }

    /// `rowOffset`: the source row this image's row 0 corresponds to (the horizontal pass may skip rows).
    private func verticalPass(_ w: ResampleWeights, rowOffset: Int) -> RGBImage {
        let newHeight = w.start.count
        let rowBytes = width * 3
        var out = [UInt8](repeating: 0, count: newHeight * rowBytes)
        pixels.withUnsafeBufferPointer { src in
            w.weights.withUnsafeBufferPointer { k in
                out.withUnsafeMutableBufferPointer { dst in
                    var accumulator = [Int](repeating: 0, count: rowBytes)
                    for y in 0..<newHeight {
                        // Accumulate whole rows at a time: the same sums as Pillow's per-pixel loop.
                        for i in 0..<rowBytes { accumulator[i] = 1 << (ResampleWeights.precisionBits - 1) }
                        for j in 0..<w.count[y] {
                            let weight = Int(k[y * w.stride + j])
                            let rowBase = (w.start[y] + j - rowOffset) * rowBytes
                            for i in 0..<rowBytes { accumulator[i] += Int(src[rowBase + i]) * weight }
                        }
                        for i in 0..<rowBytes { dst[y * rowBytes + i] = ResampleWeights.clip8(accumulator[i]) }
                    }
                }
            }
        }
        return RGBImage(width: width, height: newHeight, pixels: out)
    }
}
