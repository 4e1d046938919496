// Where each image token of a projector comes from in the original image, and the attribution grid
// that follows from it.
//
// A projector's tokens are cells of its tower's input (a padded square canvas, tiles of a stretched
// image, a pooled grid), so each token has a rectangle of original-image pixels: its canvas cell with
// the preprocessing undone and the padding cut away. The attribution grid is the finest token grid
// clipped to the image: its column and row edges are the token cells' edges inside the image, so a
// cell is exactly one token's footprint and `pixelBox(of:)` is exact for any aspect ratio.
//
// Attention mass laid on the grid: each token's mass is spread over the cells its rectangle overlaps,
// in proportion to the overlap's area. A token of the finest grid lands on its one cell; a coarser
// token (a tiled projector's global view, a class token covering the whole image) is spread over the
// cells under it by area, so the global view's mass adds to the tiles' at the same pixels; a token that
// sees only padding has no pixels and its mass is dropped. The map is then normalised to sum to 1.
import VLMTensor
import Foundation

/// A rectangle of original-image pixels with fractional edges: `x0..<x1`, `y0..<y1`.
public struct TokenRegion: Sendable, Equatable {
    public var x0: Double, y0: Double, x1: Double, y1: Double
    public init(x0: Double, y0: Double, x1: Double, y1: Double) { (self.x0, self.y0, self.x1, self.y1) = (x0, y0, x1, y1) }

    public var area: Double { max(0, x1 - x0) * max(0, y1 - y0) }

    func clipped(width: Int, height: Int) -> TokenRegion {
        TokenRegion(x0: min(max(x0, 0), Double(width)), y0: min(max(y0, 0), Double(height)),
                  x1: min(max(x1, 0), Double(width)), y1: min(max(y1, 0), Double(height)))
    }

    func offset(x: Double, y: Double) -> TokenRegion { TokenRegion(x0: x0 + x, y0: y0 + y, x1: x1 + x, y1: y1 + y) }
}

/// A projector's token -> pixel geometry for one image size.
public struct ImageTokenGeometry: Sendable, Equatable {
    /// The original image's size.
    public let width: Int, height: Int
    /// The attribution grid's column edges (0 first, `width` last, increasing) and row edges.
    public let columnEdges: [Double], rowEdges: [Double]
    /// Per image token, in chunk order: its pixels in the original image (empty: padding only).
    public let tokenRegions: [TokenRegion]

    public init(width: Int, height: Int, columnEdges: [Double], rowEdges: [Double], tokenRegions: [TokenRegion]) {
        precondition(columnEdges.count >= 2 && rowEdges.count >= 2, "a grid needs at least one cell")
        (self.width, self.height, self.columnEdges, self.rowEdges, self.tokenRegions) = (width, height, columnEdges, rowEdges, tokenRegions)
    }

    /// Every token on the whole image, one cell: what a projector that states no geometry attributes to.
    public static func wholeImage(width: Int, height: Int, tokens: Int) -> ImageTokenGeometry {
        let whole = TokenRegion(x0: 0, y0: 0, x1: Double(width), y1: Double(height))
        return ImageTokenGeometry(width: width, height: height, columnEdges: [0, Double(width)], rowEdges: [0, Double(height)],
                                  tokenRegions: [TokenRegion](repeating: whole, count: tokens))
    }

    public var gridHeight: Int { rowEdges.count - 1 }
    public var gridWidth: Int { columnEdges.count - 1 }

    /// The pixels of a box of cells: edges rounded outwards, inside the image, never empty.
    public func pixelBox(of box: GridBox) -> PixelBox {
        let x0 = Int(columnEdges[box.column].rounded(.down)), x1 = Int(columnEdges[box.column + box.columns].rounded(.up))
        let y0 = Int(rowEdges[box.row].rounded(.down)), y1 = Int(rowEdges[box.row + box.rows].rounded(.up))
        let left = min(max(0, x0), width - 1), top = min(max(0, y0), height - 1)
        return PixelBox(x: left, y: top, width: max(left + 1, min(width, x1)) - left, height: max(top + 1, min(height, y1)) - top)
    }

    /// `mass[i]` for each region of `regions` (default: this image's tokens) laid on the grid by
    /// overlap area, normalised to sum to 1 (uniform when nothing lands on the image).
    public func map(_ mass: [Double], regions: [TokenRegion]? = nil, normalization: String) -> AttributionMap {
        let regions = regions ?? tokenRegions
        precondition(mass.count == regions.count, "\(mass.count) masses for \(regions.count) token regions")
        let (h, w) = (gridHeight, gridWidth)
        var grid = [Double](repeating: 0, count: h * w)
        for (m, rect) in zip(mass, regions) where m.isFinite && m > 0 && rect.area > 0 {
            for r in cells(rowEdges, from: rect.y0, to: rect.y1) {
                let dy = min(rect.y1, rowEdges[r + 1]) - max(rect.y0, rowEdges[r])
                for c in cells(columnEdges, from: rect.x0, to: rect.x1) {
                    let dx = min(rect.x1, columnEdges[c + 1]) - max(rect.x0, columnEdges[c])
                    if dx > 0, dy > 0 { grid[r * w + c] += m * dx * dy / rect.area }
                }
            }
        }
        let total = grid.reduce(0, +)
        let scores = total > 0 && total.isFinite ? grid.map { Float($0 / total) } : [Float](repeating: 1 / Float(h * w), count: h * w)
        return AttributionMap(gridHeight: h, gridWidth: w, scores: scores, normalization: normalization)
    }

    /// Indices of the cells between `edges` that `lo..<hi` may overlap.
    private func cells(_ edges: [Double], from lo: Double, to hi: Double) -> Range<Int> {
        let first = max(0, (edges.lastIndex { $0 <= lo } ?? 0))
        let end = min(edges.count - 1, (edges.firstIndex { $0 >= hi } ?? edges.count - 1))
        return first..<max(first, end)
    }
}

/// The geometry of a canvas of `columns` x `rows` token cells (`canvasWidth` x `canvasHeight` pixels)
/// with the image drawn at `placement` (canvas pixels; the rest is padding): each cell's pixels in the
/// original image, and the grid of the cells that show any of it.
public struct PlacedGrid: Sendable {
    public typealias Placement = (x: Int, y: Int, width: Int, height: Int)
    public let columns: Int, rows: Int
    public let canvasWidth: Int, canvasHeight: Int
    public let placement: Placement
    public let imageWidth: Int, imageHeight: Int

    public init(columns: Int, rows: Int, canvasWidth: Int, canvasHeight: Int, placement: Placement, imageWidth: Int, imageHeight: Int) {
        (self.columns, self.rows, self.canvasWidth, self.canvasHeight) = (columns, rows, canvasWidth, canvasHeight)
        (self.placement, self.imageWidth, self.imageHeight) = (placement, imageWidth, imageHeight)
    }

    /// A square canvas of `side` x `side` cells.
    public init(side: Int, canvas: Int, placement: Placement, imageWidth: Int, imageHeight: Int) {
        self.init(columns: side, rows: side, canvasWidth: canvas, canvasHeight: canvas, placement: placement,
                  imageWidth: imageWidth, imageHeight: imageHeight)
    }

    /// Canvas x (or y) of cell edge `i` mapped to original pixels.
    private func x(_ i: Int) -> Double {
        (Double(i) * Double(canvasWidth) / Double(columns) - Double(placement.x)) * Double(imageWidth) / Double(placement.width)
    }
    private func y(_ i: Int) -> Double {
        (Double(i) * Double(canvasHeight) / Double(rows) - Double(placement.y)) * Double(imageHeight) / Double(placement.height)
    }

    /// Cell `(row, column)`'s pixels in the original image, clipped (empty for a padding-only cell).
    public func cell(row: Int, column: Int) -> TokenRegion {
        TokenRegion(x0: x(column), y0: y(row), x1: x(column + 1), y1: y(row + 1)).clipped(width: imageWidth, height: imageHeight)
    }

    /// Row-major over the canvas grid.
    public var cells: [TokenRegion] { (0..<rows).flatMap { r in (0..<columns).map { cell(row: r, column: $0) } } }

    /// The cell edges inside the image: 0, the inner edges, the image's side.
    public var columnEdges: [Double] { [0] + (1..<columns).map(x).filter { $0 > 0 && $0 < Double(imageWidth) } + [Double(imageWidth)] }
    public var rowEdges: [Double] { [0] + (1..<rows).map(y).filter { $0 > 0 && $0 < Double(imageHeight) } + [Double(imageHeight)] }

    /// The geometry of tokens with pixels `tokenRegions`, attributed on this grid.
    public func geometry(tokenRegions: [TokenRegion]) -> ImageTokenGeometry {
        ImageTokenGeometry(width: imageWidth, height: imageHeight, columnEdges: columnEdges, rowEdges: rowEdges, tokenRegions: tokenRegions)
    }

    /// The whole canvas is the image (a stretch, no padding).
    public static func stretched(width: Int, height: Int) -> Placement { (0, 0, width, height) }

    /// mtmd's PAD_CEIL fit of a `width` x `height` image inside a canvas (sides rounded up in float,
    /// centred), as `mtmdFitted` draws it.
    public static func mtmdFit(width: Int, height: Int, canvasWidth: Int, canvasHeight: Int) -> Placement {
        if width == canvasWidth && height == canvasHeight { return (0, 0, width, height) }
        let scale = min(Float(canvasWidth) / Float(width), Float(canvasHeight) / Float(height))
        let w = min(Int((Float(width) * scale).rounded(.up)), canvasWidth), h = min(Int((Float(height) * scale).rounded(.up)), canvasHeight)
        return ((canvasWidth - w) / 2, (canvasHeight - h) / 2, w, h)
    }
}
