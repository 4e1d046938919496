// The gemma3 projector as llama.cpp runs it (tools/mtmd: clip_graph_siglip with PROJECTOR_TYPE_GEMMA3,
// mtmd_image_preprocessor_fixed_size):
//
//   image -> fitted inside the tower's square (bilinear, black bars, mtmd's PAD_CEIL)
//         -> SigLIP tower (as idefics3's: no class token, learned positions, post-LayerNorm) -> [side², width]
//         -> average pool over s x s patch blocks (s = clip.vision.projector.scale_factor, default 4)
//                                                                   -> [(side/s)², width], row-major
//         -> RMS norm, times mm.soft_emb_norm.weight
//         -> x · mm.input_projection.weight                         -> [(side/s)², lmWidth]
//
// In the context the tokens sit between "<start_of_image>" and "<end_of_image>", and the language model
// decodes them with causal attention off (mtmd_decode_use_non_causal): the image's tokens see each other
// both ways.
import Foundation
import VLMImage
import VLMLanguage
import VLMTensor
import VLMVision

/// `@unchecked Sendable`: immutable after load (weights are read-only views of a mapping).
public final class Gemma3Projector: MultimodalProjector, @unchecked Sendable {
    public let hyperparameters: MMProjHyperparameters
    /// Patches averaged per side.
    public let poolSize: Int
    let gguf: GGUFFile
    let vit: VisionTransformer<QuantizedLinear>
    let softEmbeddingNorm: [Float]
    /// mm.input_projection.weight, used as x · P.
    let projection: Linear

    public convenience init(url: URL) throws { try self.init(gguf: GGUFFile(url: url)) }

    public init(gguf: GGUFFile) throws {
        self.gguf = gguf
        let hp = try SigLIPTower.hyperparameters(gguf, projector: "gemma3")
        hyperparameters = hp
        // llama.cpp's default for every gemma3 size; test models may set the key.
        poolSize = try SigLIPTower.scaleFactor(gguf, gridSide: hp.gridSide, minimum: 1, fallback: 4)
        let tensors = MMProjTensors(gguf: gguf)
        vit = try SigLIPTower.load(tensors, hp)
        softEmbeddingNorm = try tensors.vector("mm.soft_emb_norm.weight", hp.width)
        let name = "mm.input_projection.weight"
        let shape = try tensors.dims(name)
        guard shape == [hp.projectionWidth, hp.width] else {
            throw MMProjError.badTensor(name: name, reason: "shape \(shape), expected \([hp.projectionWidth, hp.width])")
        }
        // ggml ne = [lmWidth, width]: stored as [width][lmWidth] rows, the matrix the tokens multiply.
        projection = Linear(projection: Tensor(shape: [hp.width, hp.projectionWidth], storage: try gguf.floats(name)))
    }

    public var projectorType: String { "gemma3" }
    public var outputWidth: Int { hyperparameters.projectionWidth }
    public var tokenCount: Int { (hyperparameters.gridSide / poolSize) * (hyperparameters.gridSide / poolSize) }

    public func imageTokens(for image: RGBImage, compute: ComputeContext) throws -> ImageTokens {
        ImageTokens(chunks: [.text("<start_of_image>"), .embeddings(try encode(image, compute: compute), count: tokenCount),
                             .text("<end_of_image>")],
                    layout: EmbeddingLayout(attention: .bidirectional))
    }

    /// The pooled grid over the fitted square, row-major.
    public func tokenGeometry(width: Int, height: Int) -> ImageTokenGeometry {
        let side = hyperparameters.imageSize
        let grid = PlacedGrid(side: hyperparameters.gridSide / poolSize, canvas: side,
                              placement: PlacedGrid.mtmdFit(width: width, height: height, canvasWidth: side, canvasHeight: side),
                              imageWidth: width, imageHeight: height)
        return grid.geometry(tokenRegions: grid.cells)
    }

    /// The image's tokens: [tokenCount][outputWidth], row-major.
    public func encode(_ image: RGBImage, compute: ComputeContext = ComputeContext()) throws -> [Float] {
        let hp = hyperparameters, side = hp.imageSize
        let input = try image.mtmdFitted(width: side, height: side, filter: .bilinear)
        let states = try SigLIPTower.patchStates(vit, input, hp, compute: compute)
        var pooled = Self.averagePool(states, side: hp.gridSide, width: hp.width, size: poolSize)
        Self.rmsNormalize(&pooled, width: hp.width, weight: softEmbeddingNorm, epsilon: hp.layerNormEpsilon)
        return projection.forward(pooled, rows: tokenCount, compute: compute)
    }

    /// Means of size x size blocks of the [side, side, width] patch grid, row-major over the blocks.
    static func averagePool(_ x: [Float], side: Int, width: Int, size: Int) -> [Float] {
        let blocks = side / size
        var out = [Float](repeating: 0, count: blocks * blocks * width)
        for by in 0..<blocks {
            for bx in 0..<blocks {
                let o = (by * blocks + bx) * width
                for c in 0..<width {
                    var sum: Float = 0
                    for dy in 0..<size {
                        for dx in 0..<size { sum += x[((by * size + dy) * side + bx * size + dx) * width + c] }
                    }
                    out[o + c] = sum / Float(size * size)
                }
            }
        }
        return out
    }

    /// ggml_rms_norm (sum of squares in double) times `weight`, per row.
    static func rmsNormalize(_ x: inout [Float], width: Int, weight: [Float], epsilon: Float) {
        for row in 0..<(x.count / width) {
            let base = row * width
            var sum = 0.0
            for c in 0..<width { sum += Double(x[base + c] * x[base + c]) }
            let scale = 1 / (Float(sum / Double(width)) + epsilon).squareRoot()
            for c in 0..<width { x[base + c] = x[base + c] * scale * weight[c] }
        }
    }
}
