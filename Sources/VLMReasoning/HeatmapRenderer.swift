// Drawing an attribution map over the original photo.
import Foundation
import VLMImage

public enum HeatmapRenderer {
    /// The original image with the map blended over the part the tower saw (`visible`, the whole grid
    /// mapped to original pixels), scaled so the strongest cell is the top of the colour map, and the
    /// selected box outlined in white.
    static func render(_ image: RGBImage, map: AttributionMap, visible: PixelBox, selected: PixelBox?,
                       alpha: Float) throws -> RGBImage {
        let peak = map.scores.max() ?? 0
        let scaled = peak > 0 ? map.scores.map { $0 / peak } : map.scores
        let window = try image.cropped(x: visible.x, y: visible.y, width: visible.width, height: visible.height)
        let overlay = try HeatmapOverlay.overlay(on: window, scores: scaled, gridWidth: map.gridWidth,
                                                 gridHeight: map.gridHeight, alpha: alpha)
        var pixels = image.pixels
        for row in 0..<overlay.height {
            let source = row * overlay.width * 3
            let target = ((visible.y + row) * image.width + visible.x) * 3
            pixels.replaceSubrange(target..<target + overlay.width * 3, with: overlay.pixels[source..<source + overlay.width * 3])
        }
        if let box = selected { outline(box, in: &pixels, width: image.width, height: image.height) }
        return try RGBImage(width: image.width, height: image.height, pixels: pixels)
    }

    /// A white rectangle, 2 pixels thick (1 for boxes smaller than 4 pixels), inside `box`.
    private static func outline(_ box: PixelBox, in pixels: inout [UInt8], width: Int, height: Int) {
        let thickness = min(box.width, box.height) >= 4 ? 2 : 1
        for y in box.y..<min(height, box.y + box.height) {
            for x in box.x..<min(width, box.x + box.width) {
                let edge = x - box.x < thickness || box.x + box.width - 1 - x < thickness
                    || y - box.y < thickness || box.y + box.height - 1 - y < thickness
                guard edge else { continue }
                let i = (y * width + x) * 3
                pixels[i] = 255; pixels[i + 1] = 255; pixels[i + 2] = 255
            }
        }
    }

    /// Where a step's heatmap goes in a heatmap directory.
    static func heatmapFile(in directory: URL, step: Int) -> URL {
        directory.appendingPathComponent("step-\(step).png")
    }

    /// Fails unless every heatmap a run of `maxSteps` steps may write into `directory` can be written
    /// (the directory must exist): run before generation, so a bad folder is not found at the end.
    public static func checkDirectory(_ directory: URL, maxSteps: Int) throws(SafeFileWriter.Failure) {
        for step in 0...maxSteps { try SafeFileWriter.check(heatmapFile(in: directory, step: step)) }
    }

    /// PNG bytes, or the path written (atomically, never through a link: SafeFileWriter), as the configuration asks.
    static func output(_ heatmap: RGBImage, step: Int, to destination: HeatmapOutput) throws -> (png: [UInt8]?, path: String?) {
        switch destination {
        case .off: return (nil, nil)
        case .inline: return (try PNGEncoder.encode(heatmap), nil)
        case let .directory(url):
            let file = heatmapFile(in: url, step: step)
            try SafeFileWriter.write(try PNGEncoder.encode(heatmap), to: file)
            return (nil, file.path)
        }
    }
}
