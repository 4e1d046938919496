import Testing
import VLMImage
@testable import VLMReasoning

@Suite struct HeatmapDrawingTests {
    @Test func everyPrintableCharacterHasAGlyphAndOthersDrawAsAQuestionMark() {
        for ascii in UInt8(33)...126 {
            let rows = BitmapFont.glyph(Character(UnicodeScalar(ascii)))
            #expect(rows.count == BitmapFont.glyphHeight && rows.contains { $0 != 0 } && rows.allSatisfy { $0 < 32 })
        }
        #expect(BitmapFont.glyph(" ").allSatisfy { $0 == 0 })
        #expect(BitmapFont.glyph("é") == BitmapFont.glyph("?"))
        // No two printable characters look the same.
        let shapes = Set((UInt8(33)...126).map { BitmapFont.glyph(Character(UnicodeScalar($0))) })
        #expect(shapes.count == 94)
    }

    @Test func wrappingKeepsWordsWholeAndCutsOnlyOverlongOnes() {
        #expect(BitmapFont.wrap("a photo of a cat", columns: 8) == ["a photo", "of a cat"])
        #expect(BitmapFont.wrap("abcdefghij xy", columns: 4) == ["abcd", "efgh", "ij", "xy"])
        #expect(BitmapFont.wrap("", columns: 4) == [""])
    }

    /// A 40x20 grey image whose tower saw the middle 20x20 (a 2x2 grid), cell 1 (top right) selected.
    @Test func layoutShadesTheHiddenSidesOutlinesSelectedCellsAndCaptions() throws {
        let image = try RGBImage(width: 40, height: 20, pixels: [UInt8](repeating: 200, count: 40 * 20 * 3))
        let visible = PixelBox(x: 10, y: 0, width: 20, height: 20)
        let cell = PixelBox(x: 20, y: 0, width: 10, height: 10)
        let drawn = try HeatmapDrawing.draw(image, scores: [0.1, 0.6, 0.2, 0.1], gridWidth: 2, gridHeight: 2, visible: visible,
                                            cells: [cell], selectionNote: "selected", caption: "step 1: a cat", alpha: 0.5)
        let zoom = HeatmapDrawing.zoom(for: image)
        #expect(zoom == 8)
        #expect(drawn.width == 40 * zoom)
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(drawn.pixels[(y * drawn.width + x) * 3..<(y * drawn.width + x) * 3 + 3]) }
        // The photo starts below the caption band: find its first row by the left (hidden) column's shading.
        let header = (0..<drawn.height).first { pixel(1, $0) == [60, 60, 60] || pixel(1, $0) == [150, 150, 150] }!
        #expect(header > BitmapFont.glyphHeight)
        // Caption: some white text pixels in the band above the photo.
        #expect((0..<header).contains { y in (0..<drawn.width).contains { pixel($0, y) == [255, 255, 255] } })
        // Hidden sides darkened (200 * 0.3 = 60) or hatched; the visible middle is blended with the colour map.
        #expect(pixel(5 * zoom, header + 15 * zoom) == [60, 60, 60] || pixel(5 * zoom, header + 15 * zoom) == [150, 150, 150])
        #expect(pixel(15 * zoom, header + 15 * zoom) != [200, 200, 200])
        // The selected cell's border: black outside ring, white inside it; the unselected cell has none.
        #expect(pixel(20 * zoom, header + 5 * zoom) == [0, 0, 0] && pixel(20 * zoom + 1, header + 5 * zoom) == [255, 255, 255])
        #expect(pixel(10 * zoom, header + 15 * zoom) != [0, 0, 0])
        // The hottest cell (top right) is redder than the coolest (bottom right).
        let hot = pixel(25 * zoom, header + 5 * zoom), cool = pixel(25 * zoom, header + 15 * zoom)
        #expect(hot[0] > cool[0] && hot[2] < cool[2])
    }
}
