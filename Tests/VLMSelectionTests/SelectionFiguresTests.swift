import Foundation
import Testing
import VLMTensor
@testable import VLMSelection

/// Pointing and box IoU on hand-worked maps over a 2×2 grid of 32 px cells.
@Suite struct SelectionFiguresTests {
    let grid = CellGrid(gridHeight: 2, gridWidth: 2, rects: [
        PixelRect(x: 0, y: 0, width: 32, height: 32), PixelRect(x: 32, y: 0, width: 32, height: 32),
        PixelRect(x: 0, y: 32, width: 32, height: 32), PixelRect(x: 32, y: 32, width: 32, height: 32)])

    @Test func aTallyCountsHitsAndAveragesTheSelectedBoxesIoU() {
        var tally = FigureTally()
        #expect(tally.pointing == 0 && tally.meanIoU == 0)
        // Peaked on the labelled cell: a hit, and half the mass fits in that one cell (IoU 1).
        tally.add([0.7, 0.1, 0.1, 0.1], on: grid, box: PixelRect(x: 0, y: 0, width: 32, height: 32), mass: 0.5)
        // Highest cell 0 (the first of a tie) misses cell 1; no single cell holds half the mass, the
        // top row holds the most of the two-cell boxes: [0, 0, 64, 32] against [32, 0, 32, 32] is IoU 1/2.
        tally.add([0.3, 0.3, 0.2, 0.2], on: grid, box: PixelRect(x: 32, y: 0, width: 32, height: 32), mass: 0.5)
        #expect(tally.count == 2)
        #expect(tally.pointing == 0.5)
        #expect(abs(tally.meanIoU - 0.75) < 1e-12)
    }

    @Test func theSelectionOfAWholeMapIsTheWholeGrid() {
        #expect(grid.selection([0.25, 0.25, 0.25, 0.25], mass: 1) == PixelRect(x: 0, y: 0, width: 64, height: 64))
        #expect(grid.rect(of: GridBox(row: 1, column: 0, rows: 1, columns: 2)) == PixelRect(x: 0, y: 32, width: 64, height: 32))
    }
}
