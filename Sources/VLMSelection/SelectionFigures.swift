import Foundation
import VLMTensor

/// The cells of a map and where each lies in the image's pixels, row-major.
public struct CellGrid: Sendable, Equatable {
    public let gridHeight: Int, gridWidth: Int
    public let rects: [PixelRect]

    public init(gridHeight: Int, gridWidth: Int, rects: [PixelRect]) {
        precondition(rects.count == gridHeight * gridWidth, "one rectangle per cell")
        (self.gridHeight, self.gridWidth, self.rects) = (gridHeight, gridWidth, rects)
    }

    /// The pixels a box of cells covers (from its first cell's corner to its last cell's).
    public func rect(of box: GridBox) -> PixelRect {
        let first = rects[box.row * gridWidth + box.column], last = rects[(box.row + box.rows - 1) * gridWidth + box.column + box.columns - 1]
        return PixelRect(x: first.x, y: first.y, width: last.x + last.width - first.x, height: last.y + last.height - first.y)
    }

    /// The smallest box of cells holding `mass` of a map, in pixels: the selection `attribute` makes.
    public func selection(_ scores: [Float], mass: Float) -> PixelRect {
        rect(of: GridBox.smallest(holding: mass, of: scores, gridHeight: gridHeight, gridWidth: gridWidth))
    }
}

/// Pointing hits and box IoUs of maps against labelled boxes, summed as the queries come.
public struct FigureTally: Sendable {
    public private(set) var count = 0
    private var hits = 0, iou = 0.0

    public init() {}

    /// One query: its map over `cells`, its labelled box, and the mass the selected box must hold.
    public mutating func add(_ scores: [Float], on cells: CellGrid, box: PixelRect, mass: Float) {
        hits += SelectionMetrics.pointsInto(scores, cells: cells.rects, box: box) ? 1 : 0
        iou += cells.selection(scores, mass: mass).iou(box)
        count += 1
    }

    /// The fraction of queries whose map's highest cell has its centre inside the box (0 before any).
    public var pointing: Double { count == 0 ? 0 : Double(hits) / Double(count) }
    /// The mean IoU of the selected box with the labelled one (0 before any query).
    public var meanIoU: Double { count == 0 ? 0 : iou / Double(count) }
}
