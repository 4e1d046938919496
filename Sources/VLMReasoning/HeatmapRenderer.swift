// Drawing an attribution map over the original photo.
import Foundation
import VLMImage
import VLMTensor

public enum HeatmapRenderer {
    /// The heatmap of one attribution (HeatmapDrawing lays it out): the map blended over the part of
    /// the image the tower saw (`visible`, the whole grid mapped to original pixels), scaled so the
    /// strongest cell is the top of the colour scale, each selected cell outlined, `caption` on top.
    static func render(_ image: RGBImage, map: AttributionMap, visible: PixelBox, selection: PatchSelectionResult?,
                       pixelBox: (GridBox) -> PixelBox, caption: String, alpha: Float) throws -> RGBImage {
        let cells = selection?.cells.map { pixelBox(GridBox(row: $0 / map.gridWidth, column: $0 % map.gridWidth, rows: 1, columns: 1)) } ?? []
        // Short enough to fit a 384-pixel-wide heatmap at the legend's font size.
        let note = selection.map { s in
            let share = s.method == "box" ? s.mass : s.cells.reduce(Float(0)) { $0 + map.scores[$1] }
            let cellCount = s.cells.count == 1 ? "1 cell" : "\(s.cells.count) cells"
            let what = s.method == "box" ? "box, \(cellCount)" : "top \(cellCount)"
            return "selected \(what): \(Int((share * 100).rounded()))%"
        }
        return try HeatmapDrawing.draw(image, scores: map.scores, gridWidth: map.gridWidth, gridHeight: map.gridHeight,
                                       visible: visible, cells: cells, selectionNote: note, caption: caption, alpha: alpha)
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
