import Foundation
import Testing
import VLMTensor
@testable import VLMCLIP
@testable import VLMVision

/// Dense features at another input size, against PyTorch (scripts/fixtures/make_native_dense_fixtures.py).
@Suite struct NativeResolutionTests {
    struct ResizeCase: Decodable {
        let from: [Int], to: [Int], channels: Int
        let grid: [Float], resized: [Float]
    }

    struct TinyCase: Decodable {
        let size: Int
        let grid: [Int]
        let positional: [Float]
        let dense: [Float]
    }

    struct CaseFile<C: Decodable>: Decodable { let cases: [C] }

    static func load<T: Decodable>(_ name: String, as: T.Type) throws -> [T] {
        try JSONDecoder().decode(CaseFile<T>.self, from: Data(contentsOf: Fixtures.directory.appendingPathComponent(name))).cases
    }

    /// Up, down and non-square resizes of random grids, as F.interpolate(mode="bicubic", align_corners=False).
    @Test func bicubicResizeMatchesPyTorch() throws {
        let cases = try Self.load("bicubic-resize.json", as: ResizeCase.self)
        #expect(cases.count == 7)
        for c in cases {
            let ours = BicubicResize.channelsLast(c.grid, channels: c.channels, from: (c.from[0], c.from[1]), to: (c.to[0], c.to[1]))
            #expect(ours.count == c.resized.count)
            let worst = zip(ours, c.resized).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-5, "\(c.from) → \(c.to): max |Δ| \(worst)")
        }
    }

    @Test func resizingToTheSameGridIsTheIdentity() {
        let grid: [Float] = (0..<12).map { Float($0) * 0.37 - 1 }
        #expect(BicubicResize.channelsLast(grid, channels: 3, from: (2, 2), to: (2, 2)) == grid)
    }

    /// The tiny ModifiedResNet at 96 and 128 px: the positional embedding resized to the 3×3 / 4×4
    /// grid, and the dense features of the whole path (trunk at that size, resized embedding, value
    /// and output projections).
    @Test func denseFeaturesAtAnotherSizeMatchPyTorch() throws {
        let model = try CLIPModel(directory: Fixtures.model("rn-tiny"))
        let resnet = try #require(model.imageTower as? ModifiedResNet)
        let pool = resnet.attentionPool
        for c in try Self.load("rn-tiny-native.json", as: TinyCase.self) {
            let side = Int(Double(pool.cells).squareRoot())
            let positional = BicubicResize.channelsLast(Array(pool.positionalEmbedding[pool.width...]), channels: pool.width,
                                                        from: (side, side), to: (c.grid[0], c.grid[1]))
            #expect(zip(positional, c.positional).map { abs($0 - $1) }.max()! < 1e-5)

            var pixels = [Float](repeating: 0, count: 3 * c.size * c.size)
            for channel in 0..<3 {
                for y in 0..<c.size {
                    for x in 0..<c.size {
                        let phase = 0.05 * Double(x) + 0.09 * Double(y) + Double(channel)
                        pixels[(channel * c.size + y) * c.size + x] = Float(sin(phase))
                    }
                }
            }
            let dense = try model.encodeImageDense(pixels, count: 1, size: c.size)
            #expect(dense.gridHeight == c.grid[0] && dense.gridWidth == c.grid[1])
            let cells = c.grid[0] * c.grid[1], width = model.embedDim
            for cell in 0..<cells {
                let theirs = Array(c.dense[cell * width..<(cell + 1) * width])
                #expect(cosine(dense.features[0][cell], theirs) > 0.99999, "cell \(cell) at \(c.size) px")
                let scale = zip(dense.features[0][cell], theirs).map { abs($0 - $1) }.max()! / theirs.map(abs).max()!
                #expect(scale < 1e-3, "cell \(cell) at \(c.size) px: relative max |Δ| \(scale)")
            }
        }
    }

    /// At the model's own size nothing is resized: the same features as the usual dense path.
    @Test func atTheModelsOwnSizeTheFeaturesAreTheUsualOnes() throws {
        let model = try CLIPModel(directory: Fixtures.model("rn-tiny"))
        let size = model.config.vision.imageSize
        let pixels = Array(try Fixtures.floats(Fixtures.model("rn-tiny").appendingPathComponent("pixels.f32")).prefix(3 * size * size))
        let usual = try model.encodeImageDense(pixels, count: 1)
        let sized = try model.encodeImageDense(pixels, count: 1, size: size)
        #expect(usual == sized)
    }

    @Test func badResolutionsAreRefused() throws {
        let model = try CLIPModel(directory: Fixtures.model("rn-tiny"))
        for size in [0, 16, 100, 288] {
            #expect(throws: CLIPError.self) { try model.checkDenseResolution(size) }
        }
        try model.checkDenseResolution(256)
        #expect(throws: CLIPError.self) { try model.encodeImageDense([Float](repeating: 0, count: 10), count: 1, size: 96) }
        let vit = try CLIPModel(directory: Fixtures.model("vit-tiny"))
        #expect(throws: CLIPError.self) { try vit.checkDenseResolution(vit.config.vision.imageSize * 2) }
    }
}
