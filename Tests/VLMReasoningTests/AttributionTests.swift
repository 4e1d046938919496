// Attribution maps, patch selection and the grid-to-pixel geometry.
import Foundation
import Testing
import VLMImage
import VLMLanguage
@testable import VLMReasoning
import VLMTensor

@Suite struct AttributionTests {
    func isNormalised(_ scores: [Float]) -> Bool {
        scores.allSatisfy { $0.isFinite && $0 >= 0 } && abs(scores.reduce(0, +) - 1) < 1e-5
    }

    @Test func softmaxAndMinMaxValues() {
        let (soft, description) = Attribution.normalize([0, 1], .softmax(temperature: 1), defaultTemperature: 0.01)
        let e = Float(M_E)
        #expect(abs(soft[0] - 1 / (1 + e)) < 1e-6 && abs(soft[1] - e / (1 + e)) < 1e-6)
        #expect(description == "softmax(T=1.0)")
        #expect(Attribution.normalize([0, 1], .softmax(temperature: nil), defaultTemperature: 0.5).description == "softmax(T=0.5)")
        let (minMax, _) = Attribution.normalize([1, 2, 3], .minMax, defaultTemperature: 1)
        #expect(zip(minMax, [0, 1.0 / 3, 2.0 / 3]).allSatisfy { abs($0 - Float($1)) < 1e-6 })
        #expect(Attribution.normalize([0.3, 0.3, 0.3, 0.3], .minMax, defaultTemperature: 1).scores == [0.25, 0.25, 0.25, 0.25])
    }

    @Test func mapsAreFiniteNonNegativeAndSumToOneOnHostileInput() {
        var random = Xoshiro256StarStar(seed: 3)
        let inputs: [[Float]] = [
            [1e30, -1e30, 0], [.nan, 0.5, 0.2], [.infinity, 1, 2], [-.infinity, -.infinity], [0.7], [Float](repeating: 0, count: 49),
            (0..<196).map { _ in Float(random.nextUnit() * 2 - 1) },
        ]
        for input in inputs {
            for normalization in [AttributionNormalization.softmax(temperature: 0.001), .softmax(temperature: 100), .minMax] {
                let scores = Attribution.normalize(input, normalization, defaultTemperature: 1).scores
                #expect(scores.count == input.count)
                #expect(isNormalised(scores), "\(input.prefix(4)) \(normalization): \(scores.prefix(4))")
            }
        }
    }

    @Test func topKIndexesTheHighestCells() {
        let scores: [Float] = [0.1, 0.4, 0.05, 0.05, 0.3, 0.1]  // 2 x 3
        let (cells, box) = Attribution.topK(scores, gridWidth: 3, k: 2)
        #expect(cells == [1, 4])
        #expect(box == GridBox(row: 0, column: 1, rows: 2, columns: 1))
        #expect(Attribution.topK(scores, gridWidth: 3, k: 100).cells == Array(0..<6))
    }

    /// The smallest box against a direct enumeration that sums every box cell by cell.
    @Test func smallestBoxMatchesBruteForce() {
        var random = Xoshiro256StarStar(seed: 11)
        for (h, w) in [(1, 1), (2, 2), (3, 5), (7, 7), (4, 1)] {
            for fraction: Float in [0.1, 0.5, 0.9, 1] {
                let raw = (0..<(h * w)).map { _ in Float(random.nextUnit()) * Float(random.nextUnit()) }
                let scores = Attribution.normalize(raw, .minMax, defaultTemperature: 1).scores
                let box = GridBox.smallest(holding: fraction, of: scores, gridHeight: h, gridWidth: w)
                var best: (area: Int, mass: Double)? = nil
                for r in 0..<h { for c in 0..<w { for rows in 1...(h - r) { for cols in 1...(w - c) {
                    let mass = Attribution.cells(in: GridBox(row: r, column: c, rows: rows, columns: cols), gridWidth: w)
                        .reduce(0.0) { $0 + Double(scores[$1]) }
                    guard mass >= Double(fraction) - 1e-6 else { continue }
                    if best == nil || rows * cols < best!.area || (rows * cols == best!.area && mass > best!.mass) { best = (rows * cols, mass) }
                } } } }
                let mass = Attribution.cells(in: box, gridWidth: w).reduce(0.0) { $0 + Double(scores[$1]) }
                #expect(box.rows * box.columns == best!.area, "\(h)x\(w) f=\(fraction)")
                #expect(abs(mass - best!.mass) < 1e-6)
                #expect(box.row >= 0 && box.column >= 0 && box.row + box.rows <= h && box.column + box.columns <= w)
            }
        }
    }

    @Test func selectionsIndexRealPatches() {
        let map = AttributionMap(gridHeight: 3, gridWidth: 4, scores: Attribution.normalize((0..<12).map { Float(($0 * 7) % 5) }, .minMax,
                                                                                             defaultTemperature: 1).scores,
                                 normalization: "min-max")
        for selection in [PatchSelection.topK(1), .topK(5), .box(mass: 0.3), .box(mass: 1)] {
            let result = Attribution.select(selection, map: map) { _ in PixelBox(x: 0, y: 0, width: 1, height: 1) }!
            #expect(!result.cells.isEmpty && result.cells.allSatisfy { (0..<12).contains($0) })
            #expect(result.cells.allSatisfy { Attribution.cells(in: result.gridBox, gridWidth: 4).contains($0) })
            if case let .box(fraction) = selection { #expect(result.mass >= fraction - 1e-5) }
        }
        #expect(Attribution.select(.off, map: map) { _ in PixelBox(x: 0, y: 0, width: 1, height: 1) } == nil)
    }
}

@Suite struct PreprocessingGeometryTests {
    /// An image whose red channel is x and green channel is y (mod 256), blue constant.
    func coordinates(width: Int, height: Int) -> RGBImage {
        var pixels = [UInt8]()
        for y in 0..<height { for x in 0..<width { pixels += [UInt8(x % 256), UInt8(y % 256), 77] } }
        return try! RGBImage(width: width, height: height, pixels: pixels)
    }

    /// When the short side already equals S the preprocessing only crops: the whole grid must map to
    /// exactly the window `CLIPPreprocessing.geometry` keeps.
    @Test func wholeGridIsTheCentreCropWindow() throws {
        for (w, h) in [(8, 20), (21, 8), (8, 8), (8, 9)] {
            let image = coordinates(width: w, height: h)
            let preprocessing = try CLIPPreprocessing(imageSize: 8)
            let geometry = PreprocessingGeometry(imageWidth: w, imageHeight: h, size: 8, mode: .shortest)
            let box = geometry.pixelBox(of: GridBox(row: 0, column: 0, rows: 4, columns: 4), gridHeight: 4, gridWidth: 4)
            #expect(box.width == 8 && box.height == 8)
            #expect(try image.cropped(x: box.x, y: box.y, width: box.width, height: box.height) == preprocessing.geometry(image))
        }
    }

    /// After a real resize, each tower pixel's colour (a linear ramp survives resampling) must be the
    /// coordinate the geometry maps it back to, in every resize mode.
    @Test func cellsMapBackThroughResizeAndCrop() throws {
        for mode in CLIPPreprocessing.ResizeMode.allCases {
            for (w, h) in [(100, 60), (48, 200), (90, 90)] {
                let s = 16
                let preprocessed = try CLIPPreprocessing(imageSize: s, interpolation: .bilinear, resizeMode: mode).geometry(coordinates(width: w, height: h))
                let geometry = PreprocessingGeometry(imageWidth: w, imageHeight: h, size: s, mode: mode)
                // One cell per tower pixel: the box of cell (y, x) spans the original pixels it came from.
                for (py, px) in [(4, 5), (8, 8), (11, 10)] {
                    let box = geometry.pixelBox(of: GridBox(row: py, column: px, rows: 1, columns: 1), gridHeight: s, gridWidth: s)
                    let (r, g, _) = preprocessed[px, py]
                    if mode == .longest, r == 0 && g == 0 { continue }  // padding
                    let centreX = Double(box.x) + Double(box.width) / 2, centreY = Double(box.y) + Double(box.height) / 2
                    #expect(abs(Double(r) - (centreX - 0.5)) <= Double(box.width) / 2 + 1, "\(mode) \(w)x\(h) (\(px), \(py)): r \(r) box \(box)")
                    #expect(abs(Double(g) - (centreY - 0.5)) <= Double(box.height) / 2 + 1, "\(mode) \(w)x\(h) (\(px), \(py)): g \(g) box \(box)")
                }
            }
        }
    }

    /// Non-square images, worked by hand: at S = 64 with a 4 x 4 grid (16 input pixels per cell),
    /// a 200 x 100 image is resized to 128 x 64 and cropped at x = 32, so cell (r, c) covers original
    /// x 50 + 25c ..< 75 + 25c, y 25r ..< 25r + 25; a 100 x 300 image is resized to 64 x 192 and
    /// cropped at y = 64, so cell (r, c) covers x 25c ..< 25c + 25, y 100 + 25r ..< 125 + 25r.
    @Test func tallAndWideImagesMapCellsToTheirPixelBoxes() {
        let wide = PreprocessingGeometry(imageWidth: 200, imageHeight: 100, size: 64, mode: .shortest)
        #expect(wide.pixelBox(of: GridBox(row: 2, column: 2, rows: 1, columns: 1), gridHeight: 4, gridWidth: 4)
                == PixelBox(x: 100, y: 50, width: 25, height: 25))
        #expect(wide.pixelBox(of: GridBox(row: 1, column: 0, rows: 2, columns: 2), gridHeight: 4, gridWidth: 4)
                == PixelBox(x: 50, y: 25, width: 50, height: 50))
        #expect(wide.pixelBox(of: GridBox(row: 0, column: 0, rows: 4, columns: 4), gridHeight: 4, gridWidth: 4)
                == PixelBox(x: 50, y: 0, width: 100, height: 100))
        let tall = PreprocessingGeometry(imageWidth: 100, imageHeight: 300, size: 64, mode: .shortest)
        #expect(tall.pixelBox(of: GridBox(row: 1, column: 3, rows: 1, columns: 1), gridHeight: 4, gridWidth: 4)
                == PixelBox(x: 75, y: 125, width: 25, height: 25))
        #expect(tall.pixelBox(of: GridBox(row: 0, column: 0, rows: 4, columns: 4), gridHeight: 4, gridWidth: 4)
                == PixelBox(x: 0, y: 100, width: 100, height: 100))
    }

    /// The same boxes through the real preprocessing: a white square drawn on the pixels a cell maps to
    /// lands in that cell of the tower's input and nowhere else.
    @Test func aDrawnBoxLandsInItsCellOnTallAndWideImages() throws {
        let s = 64, cell = 16
        for (w, h, row, column) in [(200, 100, 2, 2), (100, 300, 1, 3), (200, 100, 0, 3), (100, 300, 3, 0)] {
            let geometry = PreprocessingGeometry(imageWidth: w, imageHeight: h, size: s, mode: .shortest)
            let box = geometry.pixelBox(of: GridBox(row: row, column: column, rows: 1, columns: 1), gridHeight: 4, gridWidth: 4)
            var pixels = [UInt8](repeating: 0, count: w * h * 3)
            for y in box.y..<(box.y + box.height) { for x in box.x..<(box.x + box.width) {
                pixels.replaceSubrange((y * w + x) * 3..<(y * w + x + 1) * 3, with: [255, 255, 255])
            } }
            let input = try CLIPPreprocessing(imageSize: s, interpolation: .bilinear).geometry(RGBImage(width: w, height: h, pixels: pixels))
            for y in 0..<s {
                for x in 0..<s {
                    let inCell = (x / cell, y / cell) == (column, row)
                    // Resampling blurs the square's edge by at most a pixel either side.
                    let nearEdge = abs(x - column * cell) <= 1 || abs(x - (column + 1) * cell + 1) <= 1
                        || abs(y - row * cell) <= 1 || abs(y - (row + 1) * cell + 1) <= 1
                    let value = input[x, y].0
                    if inCell && !nearEdge { #expect(value == 255, "\(w)x\(h) cell (\(row), \(column)) input (\(x), \(y)): \(value)") }
                    if !inCell && !nearEdge { #expect(value == 0, "\(w)x\(h) cell (\(row), \(column)) input (\(x), \(y)): \(value)") }
                }
            }
        }
    }

    @Test func everyBoxStaysInsideTheImage() {
        for (w, h) in [(1, 1), (1, 7), (7, 1), (640, 427), (33, 1000), (5, 3)] {
            for mode in CLIPPreprocessing.ResizeMode.allCases {
                let geometry = PreprocessingGeometry(imageWidth: w, imageHeight: h, size: 64, mode: mode)
                for (gh, gw) in [(7, 7), (2, 2), (3, 5)] {
                    for r in 0..<gh { for c in 0..<gw { for rows in 1...(gh - r) { for cols in 1...(gw - c) {
                        let box = geometry.pixelBox(of: GridBox(row: r, column: c, rows: rows, columns: cols), gridHeight: gh, gridWidth: gw)
                        #expect(box.x >= 0 && box.y >= 0 && box.width >= 1 && box.height >= 1
                                && box.x + box.width <= w && box.y + box.height <= h, "\(w)x\(h) \(mode) \(box)")
                    } } } }
                }
            }
        }
    }
}
