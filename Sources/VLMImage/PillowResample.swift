import Foundation

/// Pillow's resize (`Image.resize`, src/libImaging/Resample.c), reproduced bit-exactly for 8-bit RGB.
///
/// Why bit-exact: CLIP's reference preprocessing runs torchvision's Resize on a PIL image, which calls
/// Pillow. A different resampler shifts pixel values by a few levels and the embeddings by more than
/// parity tolerances allow.
///
/// Pillow's algorithm, as implemented below:
///  1. Separable convolution: one pass per axis, the intermediate image stored as uint8. Horizontal
///     first, except that Pillow 13 goes vertical first when the height shrinks a lot more than the
///     width (see `resizedWindow`). A pass is skipped when that dimension does not change.
///  2. Per output sample the filter is centred at `(i + 0.5) * scale` in source coordinates. When
///     downscaling (`scale > 1`) the filter is stretched by `scale` (antialiasing) and its support grows.
///  3. Weights are computed in double, normalised to sum to 1, then rounded to fixed point with 22
///     fractional bits. Each output is `clip((2^21 + Σ pixel·weight) >> 22)` to 0...255.
public enum ResampleFilter: String, Sendable, CaseIterable {
    /// Cubic convolution with a = -0.5 (Keys), support 2 — Pillow's BICUBIC.
    case bicubic
    /// Triangle filter, support 1 — Pillow's BILINEAR.
    case bilinear
    /// sinc(x)·sinc(x/3) on [-3, 3) — Pillow's LANCZOS (llama.cpp's mtmd resizes idefics3 images with it).
    case lanczos

    var support: Double {
        switch self {
        case .bicubic: 2.0
        case .bilinear: 1.0
        case .lanczos: 3.0
        }
    }

    /// The filter kernel. The arithmetic follows Pillow's order of operations so doubles round the same way.
    func weight(_ t: Double) -> Double {
        let x = abs(t)
        switch self {
        case .lanczos:
            // Pillow tests the signed argument against [-3, 3).
            guard t >= -3.0 && t < 3.0 else { return 0.0 }
            return Self.sinc(t) * Self.sinc(t / 3)
        case .bicubic:
            let a = -0.5
            if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
            if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0.0
        case .bilinear:
            return x < 1.0 ? 1.0 - x : 0.0
        }
    }

    private static func sinc(_ x: Double) -> Double {
        if x == 0.0 { return 1.0 }
        let scaled = x * Double.pi
        return sin(scaled) / scaled
    }
}

/// Which axis a two-pass resize filters first. The intermediate image is rounded to bytes, so the order
/// changes pixel values.
public enum ResamplePassOrder: Sendable {
    /// Pillow 13's rule: vertical first when the height shrinks by more than twice as many pixels as the width.
    case pillow
    /// Always horizontal first: llama.cpp's mtmd (its port of Pillow's resampler predates that rule).
    case horizontalFirst
}

/// The filter along one axis of a resize from `inputSize` to `outputSize` samples.
///
/// Kernels are computed per output sample on demand rather than tabulated: a strong downscale of a
/// very long axis has kernels of hundreds of thousands of taps, and only the current one is needed.
struct ResampleAxis {
    static let precisionBits = 32 - 8 - 2

    let inputSize: Int
    let filter: ResampleFilter
    let scale: Double
    let filterScale: Double
    let support: Double

    init(inputSize: Int, outputSize: Int, filter: ResampleFilter) {
        self.inputSize = inputSize
        self.filter = filter
        scale = Double(inputSize) / Double(outputSize)
        filterScale = max(scale, 1.0)
        support = filter.support * filterScale
    }

    private func center(_ i: Int) -> Double { (Double(i) + 0.5) * scale }

    /// The source samples output `i` reads. `Int(_:)` truncates toward zero like Pillow's C casts.
    func span(_ i: Int) -> Range<Int> {
        let c = center(i)
        return max(0, Int(c - support + 0.5))..<min(inputSize, Int(c + support + 0.5))
    }

    /// The fixed-point weights of output `i`, one per sample of `span(i)`: computed in double, normalised
    /// to sum to 1, then rounded half away from zero to 22 fractional bits.
    func weights(_ i: Int) -> [Int32] {
        let c = center(i)
        let inverseScale = 1.0 / filterScale
        var kernel = span(i).map { filter.weight((Double($0) - c + 0.5) * inverseScale) }
        let total = kernel.reduce(0.0, +)
        if total != 0.0 { kernel = kernel.map { $0 / total } }
        let one = Double(1 << Self.precisionBits)
        return kernel.map { $0 < 0 ? Int32(-0.5 + $0 * one) : Int32(0.5 + $0 * one) }
    }

    /// Rounds a fixed-point accumulator back to a byte the way Pillow's clip8 does.
    @inline(__always) static func clip8(_ accumulator: Int) -> UInt8 {
        UInt8(clamping: accumulator >> precisionBits)
    }

    static let half = 1 << (precisionBits - 1)
}

extension RGBImage {
    /// This image resized to `width` x `height` exactly as Pillow's `Image.resize((width, height), filter)`.
    /// Throws for a non-positive size or one above `PNGDecoder.defaultPixelBudget` pixels.
    /// `passOrder` `.horizontalFirst` reproduces llama.cpp's resampler instead.
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResampleFilter,
                        passOrder: ResamplePassOrder = .pillow) throws(ImageError) -> RGBImage {
        let (area, overflow) = newWidth.multipliedReportingOverflow(by: newHeight)
        guard newWidth > 0, newHeight > 0, !overflow, area <= PNGDecoder.defaultPixelBudget else {
            throw .invalidArgument("resize to \(newWidth)x\(newHeight): size must be positive and at most \(PNGDecoder.defaultPixelBudget) pixels")
        }
        return resizedWindow(width: newWidth, height: newHeight, columns: 0..<newWidth, rows: 0..<newHeight, filter: filter,
                             passOrder: passOrder)
    }

    /// The `columns` x `rows` window of `resized(width:height:filter:)`, computed without the rest of it.
    /// Same values as resizing fully and cropping (every output sample depends only on its own kernel),
    /// but memory and time scale with the window: preprocessing a 1x100000 strip to 224x224 stays cheap.
    func resizedWindow(width newWidth: Int, height newHeight: Int, columns: Range<Int>, rows: Range<Int>,
                       filter: ResampleFilter, passOrder: ResamplePassOrder = .pillow) -> RGBImage {
        precondition(newWidth > 0 && newHeight > 0 && !columns.isEmpty && !rows.isEmpty
                     && columns.clamped(to: 0..<newWidth) == columns && rows.clamped(to: 0..<newHeight) == rows,
                     "resize window \(columns) x \(rows) of \(newWidth)x\(newHeight)")
        let horizontal = ResampleAxis(inputSize: width, outputSize: newWidth, filter: filter)
        let vertical = ResampleAxis(inputSize: height, outputSize: newHeight, filter: filter)
        // Pillow skips the pass of an unchanged dimension; the window then simply selects samples.
        let needHorizontal = newWidth != width, needVertical = newHeight != height
        let sourceColumns = needHorizontal ? horizontal.span(columns.lowerBound).lowerBound..<horizontal.span(columns.upperBound - 1).upperBound : columns
        let sourceRows = needVertical ? vertical.span(rows.lowerBound).lowerBound..<vertical.span(rows.upperBound - 1).upperBound : rows
        var image = try! cropped(x: sourceColumns.lowerBound, y: sourceRows.lowerBound,
                                 width: sourceColumns.count, height: sourceRows.count)
        // Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height shrinks by more
        // than twice as many pixels as the width. The order matters: the intermediate image is rounded to uint8.
        // (Rule measured on 1479 random size combinations against Pillow 13.0.0: no exception.)
        let verticalFirst = passOrder == .pillow && needVertical && newHeight < height && height - newHeight > 2 * (width - newWidth)
        if needVertical && verticalFirst { image = image.verticalPass(rows: rows, axis: vertical, firstSourceRow: sourceRows.lowerBound) }
        if needHorizontal { image = image.horizontalPass(columns: columns, axis: horizontal, firstSourceColumn: sourceColumns.lowerBound) }
        if needVertical && !verticalFirst { image = image.verticalPass(rows: rows, axis: vertical, firstSourceRow: sourceRows.lowerBound) }
        return image
    }

    /// Horizontal resampling of every row, producing output `columns`, stored as uint8 like Pillow's
    /// intermediate image. This image's column 0 is source column `firstSourceColumn`.
    private func horizontalPass(columns: Range<Int>, axis: ResampleAxis, firstSourceColumn: Int) -> RGBImage {
        let outWidth = columns.count
        var out = [UInt8](repeating: 0, count: height * outWidth * 3)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (outX, x) in columns.enumerated() {
                    let first = axis.span(x).lowerBound - firstSourceColumn
                    let kernel = axis.weights(x)
                    for row in 0..<height {
                        var r = ResampleAxis.half, g = r, b = r
                        var p = (row * width + first) * 3
                        for weight in kernel {
                            r += Int(src[p]) * Int(weight)
                            g += Int(src[p + 1]) * Int(weight)
                            b += Int(src[p + 2]) * Int(weight)
                            p += 3
                        }
                        let o = (row * outWidth + outX) * 3
                        dst[o] = ResampleAxis.clip8(r)
                        dst[o + 1] = ResampleAxis.clip8(g)
                        dst[o + 2] = ResampleAxis.clip8(b)
                    }
                }
            }
        }
        return RGBImage(unchecked: outWidth, height: height, pixels: out)
    }

    /// Vertical resampling producing output `rows`; this image's row 0 is source row `firstSourceRow`.
    private func verticalPass(rows: Range<Int>, axis: ResampleAxis, firstSourceRow: Int) -> RGBImage {
        let rowBytes = width * 3
        var out = [UInt8](repeating: 0, count: rows.count * rowBytes)
        var accumulator = [Int](repeating: 0, count: rowBytes)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                accumulator.withUnsafeMutableBufferPointer { acc in
                    for (outRow, y) in rows.enumerated() {
                        let first = axis.span(y).lowerBound - firstSourceRow
                        // Whole rows at a time: the same sums as Pillow's per-pixel loop, in a cache-friendly order.
                        for i in 0..<rowBytes { acc[i] = ResampleAxis.half }
                        for (j, weight) in axis.weights(y).enumerated() {
                            let base = (first + j) * rowBytes
                            for i in 0..<rowBytes { acc[i] += Int(src[base + i]) * Int(weight) }
                        }
                        for i in 0..<rowBytes { dst[outRow * rowBytes + i] = ResampleAxis.clip8(acc[i]) }
                    }
                }
            }
        }
        return RGBImage(unchecked: width, height: rows.count, pixels: out)
    }
}
