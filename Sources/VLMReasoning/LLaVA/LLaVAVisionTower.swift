// The LLaVA-1.5 image encoder as llama.cpp runs it (tools/mtmd, clip_graph_llava + PROJECTOR_TYPE_MLP):
//
//   pixels -> patch embedding (conv p x p, stride p) -> [patch_0 ... patch_{n-1}, CLS] + positions 0...n
//          -> pre-LayerNorm -> blocks 0..<blocksRun (pre-norm attention + MLP) -> post-LayerNorm (if any)
//          -> rows 1...n -> Linear mm.0 -> GELU -> Linear mm.2 -> [n, lmWidth] image-token embeddings
//
// Two llama.cpp particulars are reproduced on purpose, since parity with it is the contract:
//   * the class token is appended AFTER the patches (ggml_concat along the sequence) and so takes the
//     last position embedding;
//   * the projector reads sequence rows 1...n (the index list assumes the class token comes first), so
//     patch 0 is dropped and the class token's output is the last image token.
// Image token i (0-based) therefore carries patch i+1 for i < n-1; the last carries the class token.
import Foundation
import VLMImage
import VLMLanguage
import VLMTensor
import VLMVision

/// `@unchecked Sendable`: immutable after load (weights are read-only views of a mapping).
public final class LLaVAVisionTower: MultimodalProjector, @unchecked Sendable {
    public let hyperparameters: MMProjHyperparameters
    let weights: MMProjWeights

    /// Reads the tower from an opened mmproj file and checks every tensor against the header.
    public init(gguf: GGUFFile) throws {
        hyperparameters = try MMProjHyperparameters(gguf: gguf)
        weights = try MMProjWeights(gguf: gguf, hyperparameters: hyperparameters)
    }

    public convenience init(url: URL) throws { try self.init(gguf: GGUFFile(url: url)) }

    /// Width of the image-token embeddings (the LM's embedding width).
    public var outputWidth: Int { hyperparameters.projectionWidth }
    /// Image tokens per image.
    public var tokenCount: Int { hyperparameters.patchCount }
    /// Whether the last image token carries the class token (and token i patch i+1).
    public var hasClassToken: Bool { weights.vit.classEmbedding != nil }

    public var projectorType: String { "mlp" }

    /// LLaVA-1.5 (mtmd): the image's tokens alone, no text around them.
    public func imageTokens(for image: RGBImage, compute: ComputeContext) throws -> ImageTokens {
        ImageTokens(chunks: [.embeddings(try encode(image, compute: compute), count: tokenCount)])
    }

    /// Token i is patch i+1 of the padded canvas (patch i without a class token); the class token, last,
    /// summarises the whole image.
    public func tokenGeometry(width: Int, height: Int) -> ImageTokenGeometry {
        let hp = hyperparameters
        let grid = PlacedGrid(side: hp.gridSide, canvas: hp.imageSize,
                              placement: LLaVAPreprocessing(hp).placement(width: width, height: height), imageWidth: width, imageHeight: height)
        let patches = grid.cells
        let whole = TokenRegion(x0: 0, y0: 0, x1: Double(width), y1: Double(height))
        return grid.geometry(tokenRegions: hasClassToken ? Array(patches.dropFirst()) + [whole] : patches)
    }

    /// Preprocesses and encodes `image`: [tokenCount][outputWidth], row-major.
    public func encode(_ image: RGBImage, compute: ComputeContext = ComputeContext()) throws -> [Float] {
        let pixels = try LLaVAPreprocessing(hyperparameters).pixels(image)
        return try encode(pixels: pixels, compute: compute)
    }

    /// Encodes preprocessed pixels ([y][x][channel], imageSize^2 x 3 normalised values).
    /// Throws `ComputeCancelled` between blocks once `compute` is cancelled.
    public func encode(pixels: [Float], compute: ComputeContext = ComputeContext()) throws -> [Float] {
        let hp = hyperparameters, d = hp.width, n = hp.patchCount
        guard pixels.count == hp.imageSize * hp.imageSize * 3, pixels.allSatisfy(\.isFinite) else {
            throw MMProjError.notSupported("pixels must be \(hp.imageSize)x\(hp.imageSize)x3 finite values, got \(pixels.count) values")
        }
        // llama.cpp's projector input: sequence rows 1...n (see the header comment), which with the
        // class token last are patches 1..<n and then the class token.
        let states = try weights.vit.forward(pixels, count: 1, outputs: hasClassToken ? [.patches, .pooled] : .patches,
                                             scratch: ScratchBuffer(), compute: compute)
        let features = hasClassToken ? Array(states.patches![d...]) + states.pooled! : states.patches!
        var hidden = weights.projector1.forward(features, rows: n, compute: compute)
        Activation.geluTanh(&hidden, compute: compute)
        return weights.projector2.forward(hidden, rows: n, compute: compute)
    }
}

/// llama.cpp's preprocessing for LLaVA-1.5 projectors (clip_image_preprocess, the pad-to-square branch),
/// as measured against libmtmd: the image is resized to fit inside imageSize x imageSize keeping its
/// aspect ratio (new side = ceil(side * scale)), with Pillow-style (antialiased) bicubic resampling,
/// pasted centred (offset floor((size - side) / 2)) on a canvas of LLaVA's pad colour (122, 116, 104),
/// then scaled to [0, 1] and normalised per channel with image_mean / image_std.
public struct LLaVAPreprocessing: Sendable {
    public let size: Int
    public let mean: [Float], std: [Float]
    public static let padColour: (UInt8, UInt8, UInt8) = (122, 116, 104)

    public init(_ hp: MMProjHyperparameters) {
        size = hp.imageSize
        mean = hp.imageMean
        std = hp.imageStd
    }

    /// Where the image lands on the square canvas: x, y, width, height in canvas pixels.
    public func placement(width: Int, height: Int) -> (x: Int, y: Int, width: Int, height: Int) {
        let scale = min(Double(size) / Double(width), Double(size) / Double(height))
        let w = min(size, max(1, Int((Double(width) * scale).rounded(.up))))
        let h = min(size, max(1, Int((Double(height) * scale).rounded(.up))))
        return ((size - w) / 2, (size - h) / 2, w, h)
    }

    /// [y][x][channel] normalised values of the padded, resized image.
    public func pixels(_ image: RGBImage) throws -> [Float] {
        let place = placement(width: image.width, height: image.height)
        let resized = try image.resized(width: place.width, height: place.height, filter: .bicubic)
        var out = [Float](repeating: 0, count: size * size * 3)
        let pad = [Self.padColour.0, Self.padColour.1, Self.padColour.2]
        for y in 0..<size {
            for x in 0..<size {
                let inside = x >= place.x && x < place.x + place.width && y >= place.y && y < place.y + place.height
                let rgb = inside ? resized[x - place.x, y - place.y] : (pad[0], pad[1], pad[2])
                let values = [rgb.0, rgb.1, rgb.2]
                for c in 0..<3 { out[(y * size + x) * 3 + c] = (Float(values[c]) / 255 - mean[c]) / std[c] }
            }
        }
        return out
    }
}
