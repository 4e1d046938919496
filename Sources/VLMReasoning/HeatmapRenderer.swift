// Drawing an attribution map over the original photo.
import Foundation
import VLMImage

enum HeatmapRenderer {
    /// The heatmap of one attribution (HeatmapDrawing lays it out): the map blended over the part of
    /// the image the tower saw (`visible`, the whole grid mapped to original pixels), scaled so the
    /// strongest cell is the top of the colour scale, each selected cell outlined, `caption` on top.
    static func render(_ image: RGBImage, map: AttributionMap, visible: PixelBox, selection: PatchSelectionResult?,
                       pixelBox: (GridBox) -> PixelBox, caption: String, alpha: Float) throws -> RGBImage {
        let cells = selection?.cells.map { pixelBox(GridBox(row: $0 / map.gridWidth, column: $0 % map.gridWidth, rows: 1, columns: 1)) } ?? []
        let note = selection.map { s in
            let share = s.method == "box" ? s.mass : s.cells.reduce(Float(0)) { $0 + map.scores[$1] }
            let what = s.method == "box" ? "box of \(s.cells.count) cells" : "top \(s.cells.count) cells"
            return "selected: \(what), \(Int((share * 100).rounded()))% of map"
        }
        return try HeatmapDrawing.draw(image, scores: map.scores, gridWidth: map.gridWidth, gridHeight: map.gridHeight,
                                       visible: visible, cells: cells, selectionNote: note, caption: caption, alpha: alpha)
    }

    /// PNG bytes, or the path written, as the configuration asks.
    static func output(_ heatmap: RGBImage, step: Int, to destination: HeatmapOutput) throws -> (png: [UInt8]?, path: String?) {
        switch destination {
        case .off: return (nil, nil)
        case .inline: return (try PNGEncoder.encode(heatmap), nil)
        case let .directory(url):
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            let path = url.appendingPathComponent("step-\(step).png").path
            try PNGEncoder.write(heatmap, to: path)
            return (nil, path)
        }
    }
}
