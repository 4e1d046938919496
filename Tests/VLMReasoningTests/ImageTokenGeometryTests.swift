import VLMTensor
import Foundation
import Testing
import VLMImage
@testable import VLMReasoning

/// Each projector's token -> pixel geometry on a tall (100x300) and a wide (300x100) image, worked by
/// hand from its preprocessing: a known pixel box maps to the expected cells of the attribution grid,
/// and those cells map back to the box (`pixelBox(of:)`).
@Suite struct ImageTokenGeometryTests {
    /// The cells that a unit of mass on every token of `tokens` (default all) overlapping `box` lands on.
    static func cells(hitBy box: TokenRegion, _ geometry: ImageTokenGeometry, tokens: Range<Int>? = nil) -> [Int] {
        let tokens = tokens ?? geometry.tokenRegions.indices
        let mass = geometry.tokenRegions.enumerated().map { i, r in
            tokens.contains(i) && min(r.x1, box.x1) > max(r.x0, box.x0) && min(r.y1, box.y1) > max(r.y0, box.y0) ? 1.0 : 0
        }
        let map = geometry.map(mass, normalization: "test")
        return map.scores.indices.filter { map.scores[$0] > 0 }
    }

    static func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double) -> TokenRegion { TokenRegion(x0: x, y0: y, x1: x + w, y1: y + h) }

    /// LLaVA (32-px canvas, 8-px patches, class token last). Tall: the image is drawn 11x32 at canvas
    /// x 10, so canvas columns 1 and 2 show it: column 1 covers image x 0..<(16-10)·100/11 = 54.5, column
    /// 2 the rest; rows are 75 px. Token 5 is patch 6 = canvas (row 1, column 2) = grid cell (1, 1).
    @Test func llavaTallAndWide() throws {
        let tower = LLaVAModels.tower
        let tall = tower.tokenGeometry(width: 100, height: 300)
        #expect(tall.gridHeight == 4 && tall.gridWidth == 2)
        #expect(tall.columnEdges.count == 3 && abs(tall.columnEdges[1] - 600.0 / 11) < 1e-9 && tall.rowEdges == [0, 75, 150, 225, 300])
        #expect(Self.cells(hitBy: Self.rect(60, 80, 30, 60), tall, tokens: 0..<15) == [3])
        #expect(tall.pixelBox(of: GridBox(row: 1, column: 1, rows: 1, columns: 1)) == PixelBox(x: 54, y: 75, width: 46, height: 75))
        var oneHot = [Double](repeating: 0, count: 16)
        oneHot[5] = 1
        #expect(tall.map(oneHot, normalization: "").scores == [0, 0, 0, 1, 0, 0, 0, 0])
        // The class token (last) covers the whole image: spread over every cell by its area.
        oneHot = [Double](repeating: 0, count: 16)
        oneHot[15] = 1
        let spread = tall.map(oneHot, normalization: "").scores
        let left: Double = 600.0 / 11 * 75 / 30000, right: Double = (100 - 600.0 / 11) * 75 / 30000
        let expected: [Double] = (0..<8).map { $0 % 2 == 0 ? left : right }
        #expect(zip(spread, expected).allSatisfy { abs(Double($0) - $1) < 1e-6 })

        let wide = tower.tokenGeometry(width: 300, height: 100)
        #expect(wide.gridHeight == 2 && wide.gridWidth == 4)
        // Canvas (row 2, column 3) = patch 11 = token 10: image x 225..<300, y 54.5..<100.
        #expect(Self.cells(hitBy: Self.rect(230, 60, 60, 30), wide, tokens: 0..<15) == [7])
        #expect(wide.pixelBox(of: GridBox(row: 1, column: 3, rows: 1, columns: 1)) == PixelBox(x: 225, y: 54, width: 75, height: 46))
        #expect(wide.pixelBox(of: GridBox(row: 0, column: 0, rows: 2, columns: 4)) == PixelBox(x: 0, y: 0, width: 300, height: 100))
    }

    /// Idefics3 (32-px tiles of 2x2 tokens, longest edge 96). Tall: 32x96 = 1 column x 3 rows of tiles,
    /// the image stretched over them, so the grid is 2 x 6 cells of 50x50 px. Tile 1's token (1, 0) is
    /// token 4 + 2 = 6 at cell (3, 0). Global-view token 13 (row 0, column 1 of 2x2) covers x 50..<100,
    /// y 0..<150: three cells, a third each.
    @Test func idefics3TilesAndGlobalView() throws {
        let projector = Idefics3Models.projector
        let tall = projector.tokenGeometry(width: 100, height: 300)
        #expect(tall.tokenRegions.count == 3 * 4 + 4)
        #expect(tall.gridWidth == 2 && tall.gridHeight == 6 && tall.columnEdges == [0, 50, 100])
        #expect(tall.tokenRegions[6] == Self.rect(0, 150, 50, 50))
        #expect(tall.pixelBox(of: GridBox(row: 3, column: 0, rows: 1, columns: 1)) == PixelBox(x: 0, y: 150, width: 50, height: 50))
        var oneHot = [Double](repeating: 0, count: 16)
        oneHot[13] = 1
        let global = tall.map(oneHot, normalization: "").scores
        #expect([1, 3, 5].allSatisfy { abs(global[$0] - 1.0 / 3) < 1e-6 } && global.reduce(0, +) > 0.999)

        let wide = projector.tokenGeometry(width: 300, height: 100)
        #expect(wide.gridWidth == 6 && wide.gridHeight == 2)
        // Tile 2 (of 3 in a row), token (1, 1): token 11, cell (1, 5), x 250..<300, y 50..<100.
        #expect(wide.tokenRegions[11] == Self.rect(250, 50, 50, 50))
        #expect(Self.cells(hitBy: Self.rect(260, 60, 20, 20), wide, tokens: 0..<12) == [11])
        #expect(wide.pixelBox(of: GridBox(row: 1, column: 5, rows: 1, columns: 1)) == PixelBox(x: 250, y: 50, width: 50, height: 50))
    }

    /// Idefics3 geometry against its own preprocessing: every tile's pixels are the tile the
    /// preprocessing cut (a stretch of the image onto whole tiles), so the tile regions tile the image.
    @Test func idefics3TileRegionsCoverTheImageOnce() throws {
        let projector = Idefics3Models.projector
        for (w, h) in [(451, 300), (100, 300), (741, 500)] {
            let g = projector.tokenGeometry(width: w, height: h)
            let (rows, columns) = projector.preprocessing.grid(width: w, height: h)
            let tiles = g.tokenRegions.prefix(rows * columns * projector.tokensPerView)
            #expect(abs(tiles.reduce(0) { $0 + $1.area } - Double(w * h)) < 1e-6)
            #expect(g.gridHeight * g.gridWidth == tiles.count)
        }
    }

    /// Gemma3 (32-px square, 2x2 pooled tokens). Tall: fitted as 11x32 at x 10 (mtmd's PAD_CEIL), so
    /// token column 0 covers image x 0..<(16-10)·100/11, column 1 the rest; rows are 150 px.
    @Test func gemma3TallAndWide() throws {
        let projector = ProjectorPath.gemma3.projector
        let tall = projector.tokenGeometry(width: 100, height: 300)
        #expect(tall.gridWidth == 2 && tall.gridHeight == 2 && tall.rowEdges == [0, 150, 300])
        #expect(Self.cells(hitBy: Self.rect(70, 200, 10, 10), tall) == [3])
        #expect(tall.pixelBox(of: GridBox(row: 1, column: 1, rows: 1, columns: 1)) == PixelBox(x: 54, y: 150, width: 46, height: 150))
        let wide = projector.tokenGeometry(width: 300, height: 100)
        #expect(wide.gridWidth == 2 && wide.gridHeight == 2 && wide.columnEdges == [0, 150, 300])
        #expect(Self.cells(hitBy: Self.rect(10, 70, 10, 10), wide) == [2])
        #expect(wide.pixelBox(of: GridBox(row: 1, column: 0, rows: 1, columns: 1)) == PixelBox(x: 0, y: 54, width: 150, height: 46))
    }

    /// A look's tokens land in the crop they saw: the prepared image scales the crop's own geometry into
    /// the original image's pixels.
    @Test func lookTokensLandInTheirCrop() throws {
        let frontEnd = try ProjectorFrontEnd(projector: LLaVAModels.tower, languageModel: Models.stories)
        let prepared = try #require(try frontEnd.prepare(RGBImage(width: 300, height: 100, fill: (9, 9, 9)), precomputed: nil,
                                                         compute: .init()) as? ProjectorPreparedImage)
        _ = try prepared.lookEvidence(at: PixelBox(x: 225, y: 0, width: 75, height: 100), step: 0, compute: .init())
        let readout = try #require(prepared.attentionReadout)
        var mass = [Double](repeating: 0, count: readout.positions.reduce(0) { $0 + $1.count })
        for i in 16..<31 { mass[i] = 1 }  // the look's patch tokens, not its class token
        let map = try #require(prepared.attribution(attention: mass))
        // Every cell with mass is in grid column 3 (x 225..<300).
        #expect(map.scores.indices.filter { map.scores[$0] > 0 }.allSatisfy { $0 % 4 == 3 })
    }
}
