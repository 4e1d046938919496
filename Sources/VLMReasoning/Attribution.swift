// From similarities over a grid to a normalised attribution map, and from the map to chosen patches.
import Foundation
import VLMImage
import VLMTensor

public enum Attribution {
    /// Cosine similarity of `text` (L2-normalised) with each cell's feature (normalised here: dense
    /// features come out of the tower unnormalised, and their norms vary by position, which would
    /// otherwise dominate the map).
    public static func similarities(text: [Float], cells: [[Float]]) -> [Float] {
        cells.map { dot(l2Normalized($0), text) }
    }

    /// Turns similarities into a map that is finite, non-negative and sums to 1.
    ///
    /// - softmax: exp((s - max) / T) / sum. Subtracting the max keeps every exponent <= 0, so nothing
    ///   overflows; the max cell contributes 1, so the sum is >= 1 and the division is safe.
    /// - minMax: (s - min) / (max - min), divided by its sum; all-equal similarities give the uniform map.
    /// Non-finite similarities (a degenerate feature) count as the lowest value.
    public static func normalize(_ similarities: [Float], _ normalization: AttributionNormalization,
                                 defaultTemperature: Float) -> (scores: [Float], description: String) {
        precondition(!similarities.isEmpty, "an attribution map needs at least one cell")
        let finite = similarities.filter(\.isFinite)
        let low = finite.min() ?? 0, high = finite.max() ?? 0
        let s = similarities.map { $0.isFinite ? $0 : low }
        let uniform = [Float](repeating: 1 / Float(s.count), count: s.count)
        switch normalization {
        case let .softmax(temperature):
            let t = temperature ?? defaultTemperature
            let p = softmaxInDouble(s, temperature: t)
            guard p.allSatisfy(\.isFinite) else { return (uniform, "softmax(T=\(t))") }
            return (p.map { Float($0) }, "softmax(T=\(t))")
        case .minMax:
            guard high > low else { return (uniform, "min-max") }
            let scaled = s.map { Double(($0 - low) / (high - low)) }
            let total = scaled.reduce(0, +)
            return (scaled.map { Float($0 / total) }, "min-max")
        }
    }

    /// The k highest cells (ties: the lower index) and their bounding box.
    public static func topK(_ scores: [Float], gridWidth: Int, k: Int) -> (cells: [Int], box: GridBox) {
        let chosen = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
            .prefix(max(1, min(k, scores.count))).sorted()
        let rows = chosen.map { $0 / gridWidth }, columns = chosen.map { $0 % gridWidth }
        let box = GridBox(row: rows.min()!, column: columns.min()!,
                          rows: rows.max()! - rows.min()! + 1, columns: columns.max()! - columns.min()! + 1)
        return (chosen, box)
    }

    /// Row-major indices of the cells inside `box`.
    public static func cells(in box: GridBox, gridWidth: Int) -> [Int] {
        (box.row..<box.row + box.rows).flatMap { r in (box.column..<box.column + box.columns).map { r * gridWidth + $0 } }
    }

    /// Applies `selection` to `map`; nil when selection is off.
    static func select(_ selection: PatchSelection, map: AttributionMap,
                       pixelBox: (GridBox) -> PixelBox) -> PatchSelectionResult? {
        let cells: [Int], box: GridBox, method: String
        switch selection {
        case .off: return nil
        case let .topK(k):
            (cells, box) = topK(map.scores, gridWidth: map.gridWidth, k: k)
            method = "topK"
        case let .box(mass):
            box = GridBox.smallest(holding: mass, of: map.scores, gridHeight: map.gridHeight, gridWidth: map.gridWidth)
            cells = Self.cells(in: box, gridWidth: map.gridWidth)
            method = "box"
        }
        let mass = Self.cells(in: box, gridWidth: map.gridWidth).reduce(Float(0)) { $0 + map.scores[$1] }
        return PatchSelectionResult(method: method, cells: cells, gridBox: box, pixelBox: pixelBox(box), mass: mass)
    }
}

extension Attribution {
    /// The map of a text over a grid of L2-normalised cell features: cosine similarities, normalised
    /// as configured (softmax's default temperature is 1 / CLIP's logit scale).
    static func map(textEmbedding: [Float], cells: [[Float]], gridHeight: Int, gridWidth: Int,
                    normalization: AttributionNormalization, logitScale: Float) -> AttributionMap {
        let (scores, description) = normalize(similarities(text: textEmbedding, cells: cells), normalization,
                                              defaultTemperature: 1 / logitScale)
        return AttributionMap(gridHeight: gridHeight, gridWidth: gridWidth, scores: scores, normalization: description)
    }

    /// What a reasoning step (or an `Attributor` text) reports: its map, the selection made from it,
    /// and its heatmap drawn and delivered as `heatmaps` asks (`caption` is the heatmap's title).
    public static func stepAttribution(step: Int, text: String, caption: String, map: AttributionMap, image: RGBImage,
                                pixelBox: (GridBox) -> PixelBox, selection: PatchSelection, heatmaps: HeatmapOutput,
                                alpha: Float) throws -> StepAttribution {
        var attribution = StepAttribution(step: step, text: text, map: map, selection: select(selection, map: map, pixelBox: pixelBox),
                                          heatmapPNG: nil, heatmapPath: nil)
        try drawHeatmap(&attribution, caption: caption, image: image, pixelBox: pixelBox, heatmaps: heatmaps, alpha: alpha)
        return attribution
    }

    /// Draws `attribution`'s heatmap and delivers it as `heatmaps` asks (nothing when off).
    static func drawHeatmap(_ attribution: inout StepAttribution, caption: String, image: RGBImage, pixelBox: (GridBox) -> PixelBox,
                            heatmaps: HeatmapOutput, alpha: Float) throws {
        guard heatmaps != .off else { return }
        let map = attribution.map
        let visible = pixelBox(GridBox(row: 0, column: 0, rows: map.gridHeight, columns: map.gridWidth))
        let heatmap = try HeatmapRenderer.render(image, map: map, visible: visible, selection: attribution.selection, pixelBox: pixelBox,
                                                 caption: caption, alpha: alpha)
        (attribution.heatmapPNG, attribution.heatmapPath) = try HeatmapRenderer.output(heatmap, step: attribution.step, to: heatmaps)
    }
}
