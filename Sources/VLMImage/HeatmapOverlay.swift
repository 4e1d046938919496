/// Colour-mapped score overlays (e.g. a patch-similarity map drawn over the input photo).
public enum HeatmapOverlay {
    /// The "jet" colour map as the classic piecewise-linear formula: 0 is dark blue, 0.25 cyan-blue,
    /// 0.5 green, 0.75 yellow-orange, 1 dark red. Channel c = clamp(1.5 - |4t - k_c|) with k = 3, 2, 1
    /// for R, G, B. Values outside [0, 1] are clamped; NaN maps to 0.
    public static func jet(_ score: Float) -> (UInt8, UInt8, UInt8) {
        let t = score.isNaN ? 0 : min(max(score, 0), 1)
        func channel(_ k: Float) -> UInt8 { UInt8((min(max(1.5 - abs(4 * t - k), 0), 1) * 255).rounded()) }
        return (channel(3), channel(2), channel(1))
    }

    /// `image` blended with the jet-coloured `scores`: each output pixel is
    /// `round((1 - alpha) * pixel + alpha * jet(score))`, where the score grid (`gridHeight` x `gridWidth`,
    /// row-major) is upsampled to the image bilinearly with pixel-centre alignment (like
    /// `F.interpolate(..., mode="bilinear", align_corners=False)`), edges clamped.
    public static func overlay(on image: RGBImage, scores: [Float], gridWidth: Int, gridHeight: Int,
                               alpha: Float = 0.5) throws(ImageError) -> RGBImage {
        guard gridWidth > 0, gridHeight > 0, scores.count == gridWidth * gridHeight else {
            throw .invalidArgument("heatmap: \(scores.count) scores do not fill a \(gridHeight)x\(gridWidth) grid")
        }
        guard alpha >= 0, alpha <= 1 else { throw .invalidArgument("heatmap: alpha \(alpha) is outside [0, 1]") }
        let xs = (0..<image.width).map { SampleWeights(pixel: $0, imageSize: image.width, gridSize: gridWidth) }
        var out = image
        for y in 0..<image.height {
            let wy = SampleWeights(pixel: y, imageSize: image.height, gridSize: gridHeight)
            for x in 0..<image.width {
                let wx = xs[x]
                func s(_ gy: Int, _ gx: Int) -> Float { scores[gy * gridWidth + gx] }
                let top = s(wy.low, wx.low) * (1 - wx.fraction) + s(wy.low, wx.high) * wx.fraction
                let bottom = s(wy.high, wx.low) * (1 - wx.fraction) + s(wy.high, wx.high) * wx.fraction
                let colour = jet(top * (1 - wy.fraction) + bottom * wy.fraction)
                let i = (y * image.width + x) * 3
                out.pixels[i] = blend(image.pixels[i], colour.0, alpha)
                out.pixels[i + 1] = blend(image.pixels[i + 1], colour.1, alpha)
                out.pixels[i + 2] = blend(image.pixels[i + 2], colour.2, alpha)
            }
        }
        return out
    }

    /// The two grid cells a pixel centre falls between along one axis, and the weight of the second.
    private struct SampleWeights {
        let low: Int, high: Int, fraction: Float

        init(pixel: Int, imageSize: Int, gridSize: Int) {
            let position = max(0, (Float(pixel) + 0.5) * Float(gridSize) / Float(imageSize) - 0.5)
            low = min(Int(position), gridSize - 1)
            high = min(low + 1, gridSize - 1)
            fraction = position - Float(low)
        }
    }

    private static func blend(_ a: UInt8, _ b: UInt8, _ alpha: Float) -> UInt8 {
        UInt8(((1 - alpha) * Float(a) + alpha * Float(b)).rounded())
    }
}
