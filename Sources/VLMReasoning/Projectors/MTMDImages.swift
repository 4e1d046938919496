// What llama.cpp's mtmd does to an image's pixels before a SigLIP-style tower: its two resizes
// (img_tool::resize: Pillow's resampler as it ports it, horizontal pass first whatever the shape;
// stretched to a size, or fitted inside it keeping the aspect ratio, PAD_CEIL: sides rounded up in float,
// centred on a fill colour), and the tower's input values.
import VLMImage

extension RGBImage {
    /// Stretched to `width` x `height` (mtmd's PAD_NONE resize).
    func mtmdResized(width: Int, height: Int, filter: ResampleFilter) throws -> RGBImage {
        try resized(width: width, height: height, filter: filter, passOrder: .horizontalFirst)
    }

    /// Fitted inside `width` x `height` keeping the aspect ratio, centred on `fill` (mtmd's PAD_CEIL resize).
    func mtmdFitted(width: Int, height: Int, filter: ResampleFilter, fill: (UInt8, UInt8, UInt8) = (0, 0, 0)) throws -> RGBImage {
        if width == self.width && height == self.height { return self }
        // The fit is the one attribution maps undo (PlacedGrid.mtmdFit), so the two cannot drift apart.
        let (left, top, w, h) = PlacedGrid.mtmdFit(width: self.width, height: self.height, canvasWidth: width, canvasHeight: height)
        let inner = try mtmdResized(width: w, height: h, filter: filter)
        var canvas = try RGBImage(width: width, height: height, fill: fill).pixels
        for y in 0..<h {
            let source = y * w * 3, target = ((top + y) * width + left) * 3
            canvas.replaceSubrange(target..<(target + w * 3), with: inner.pixels[source..<(source + w * 3)])
        }
        return try RGBImage(width: width, height: height, pixels: canvas)
    }

    /// [y][x][channel] values scaled to [0, 1], normalised with `mean` / `std` (mtmd's order), then rounded
    /// to fp16: ggml_conv_2d lays the patches out in F16 (im2col) before the patch embedding, so llama.cpp's
    /// tower sees these values. (Its kernel is rounded to F16 too; converted files store it so.)
    func mtmdTowerInput(mean: [Float], std: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: pixels.count)
        for (i, byte) in pixels.enumerated() { out[i] = Float(Float16((Float(byte) / 255 - mean[i % 3]) / std[i % 3])) }
        return out
    }
}
