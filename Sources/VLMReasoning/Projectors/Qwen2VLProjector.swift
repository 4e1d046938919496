// The Qwen2-VL projector as llama.cpp runs it (tools/mtmd: clip_graph_qwen2vl, mtmd_image_preprocessor_dyn_size):
//
//   image -> fitted (bicubic, black bars, PAD_CEIL) into the "smart" size: each side a multiple of
//            28 = patch 14 x merge 2, the area kept within [minTokens, maxTokens] x 28²
//         -> 14 px patches, each embedded by two conv kernels (`v.patch_embd.weight`, `.weight.1`: the two
//            frames of a still image are the same picture) and summed
//         -> patches ordered by 2x2 block (block row, block column, then the block's own 2x2 in raster order)
//         -> pre-norm ViT blocks (LayerNorm, quick GELU) with 2-D rotary positions (row, column) on queries
//            and keys, full attention
//         -> post-LayerNorm (the merger's ln_q)
//         -> each 2x2 block's 4 states concatenated -> mm.0 -> GELU -> mm.2         -> [rows x columns, lmWidth]
//
// In the context the tokens sit between "<|vision_start|>" and "<|vision_end|>", on a rows x columns grid:
// an M-RoPE language model (qwen2vl) gives them (t, t + row, t + column) positions.
import Foundation
import VLMImage
import VLMLanguage
import VLMTensor
import VLMVision

/// `@unchecked Sendable`: immutable after load (weights are read-only views of a mapping).
public final class Qwen2VLProjector: MultimodalProjector, @unchecked Sendable {
    /// `clip.projector_type` of Qwen2-VL files.
    public static let fileType = "qwen2vl_merger"
    public let hyperparameters: MMProjHyperparameters
    /// Image tokens an image may become (mtmd: 8...4096 for Qwen-VL, or its context's `image_max_tokens`).
    public let tokenLimits: ClosedRange<Int>
    /// Patches merged per side (`clip.vision.spatial_merge_size`).
    public let mergeSize = 2
    let gguf: GGUFFile
    let patchKernels: (QuantizedLinear, QuantizedLinear)
    let encoder: TransformerEncoder<QuantizedLinear>
    let postNorm: LayerNorm?
    let merger: (QuantizedLinear, QuantizedLinear)

    public init(url: URL, tokenLimits: ClosedRange<Int> = 8...4096) throws {
        gguf = try GGUFFile(url: url)
        var hp = try MMProjHyperparameters(gguf: gguf, projector: Self.fileType)
        hp.blocksRun = hp.blockCount
        hyperparameters = hp
        guard tokenLimits.lowerBound > 0 else { throw MMProjError.notSupported("an image token limit of \(tokenLimits)") }
        self.tokenLimits = tokenLimits
        if let merge = gguf.metadata["clip.vision.spatial_merge_size"]?.intValue, merge != mergeSize {
            throw MMProjError.notSupported("clip.vision.spatial_merge_size \(merge) (Qwen2-VL merges 2x2)")
        }
        let tensors = MMProjTensors(gguf: gguf)
        var architecture = ViTArchitecture(mmproj: hp, hasClassToken: false)
        // ggml's CPU tables for both GELUs (clip_graph_qwen2vl's FFN_GELU_QUICK unless `clip.use_gelu`).
        architecture.activation = hp.useGELU ? .geluTanhHalfTable : .quickGELUHalfTable
        patchKernels = (try tensors.patchKernel("v.patch_embd.weight", architecture),
                        try tensors.patchKernel("v.patch_embd.weight.1", architecture))
        encoder = TransformerEncoder(blocks: try tensors.blocks(architecture))
        postNorm = try tensors.optionalNorm("v.post_ln", architecture)
        let merged = hp.width * mergeSize * mergeSize
        merger = (try tensors.linear("mm.0", in: merged, out: merged), try tensors.linear("mm.2", in: merged, out: hp.projectionWidth))
    }

    public var projectorType: String { Self.fileType }
    public var outputWidth: Int { hyperparameters.projectionWidth }

    public func imageTokens(for image: RGBImage, compute: ComputeContext) throws -> ImageTokens {
        let (embeddings, grid) = try encode(image, compute: compute)
        return ImageTokens(chunks: [.text("<|vision_start|>"), .embeddings(embeddings, count: grid.rows * grid.columns), .text("<|vision_end|>")],
                           layout: EmbeddingLayout(grid: grid))
    }

    /// The image's tokens, [rows x columns][outputWidth] row-major, and their grid.
    public func encode(_ image: RGBImage, compute: ComputeContext = ComputeContext()) throws -> ([Float], EmbeddingLayout.Grid) {
        let hp = hyperparameters, unit = hp.patchSize * mergeSize
        let size = Self.smartSize(width: image.width, height: image.height, unit: unit, tokenLimits: tokenLimits)
        let input = try image.mtmdFitted(width: size.width, height: size.height, filter: .bicubic)
        let pixels = input.mtmdTowerInput(mean: hp.imageMean, std: hp.imageStd)
        let (patches, rows, columns) = blockOrderedPatches(pixels, width: size.width, height: size.height)
        let count = rows.count
        var x = patchKernels.0.forward(patches, rows: count, compute: compute)
        addInPlace(&x, patchKernels.1.forward(patches, rows: count, compute: compute))
        let rotary = RotaryAngles.grid2D(rows: rows, columns: columns, headDimension: hp.headDimension)
        try encoder.apply(&x, sequenceLengths: [count], causal: false, rotary: rotary, scratch: ScratchBuffer(), compute: compute)
        postNorm?(&x, rows: count)
        // [count, width] is [count / 4, 4 * width]: a 2x2 block's states side by side.
        let tokens = count / (mergeSize * mergeSize)
        var hidden = merger.0.forward(x, rows: tokens, compute: compute)
        let gelu = Activation.geluTanhHalfTable  // ggml_gelu, as the merger's FFN_GELU runs it
        gelu(&hidden, compute: compute)
        return (merger.1.forward(hidden, rows: tokens, compute: compute),
                EmbeddingLayout.Grid(rows: size.height / unit, columns: size.width / unit))
    }

    /// The patches of a [height][width][channel] image as rows of (channel, y, x) values, ordered by 2x2
    /// block (as clip_graph_qwen2vl permutes the convolution's output), with each patch's grid row and column.
    func blockOrderedPatches(_ pixels: [Float], width: Int, height: Int) -> (patches: [Float], rows: [Int], columns: [Int]) {
        let p = hyperparameters.patchSize, m = mergeSize
        let across = width / p, down = height / p, patchValues = 3 * p * p
        var patches = [Float](repeating: 0, count: across * down * patchValues)
        var rows: [Int] = [], columns: [Int] = []
        for blockY in stride(from: 0, to: down, by: m) {
            for blockX in stride(from: 0, to: across, by: m) {
                for dy in 0..<m {
                    for dx in 0..<m {
                        let (py, px) = (blockY + dy, blockX + dx), base = rows.count * patchValues
                        for c in 0..<3 {
                            for ky in 0..<p {
                                for kx in 0..<p {
                                    patches[base + (c * p + ky) * p + kx] = pixels[((py * p + ky) * width + px * p + kx) * 3 + c]
                                }
                            }
                        }
                        rows.append(py)
                        columns.append(px)
                    }
                }
            }
        }
        return (patches, rows, columns)
    }

    /// mtmd's calc_size_preserved_ratio: each side rounded to a multiple of `unit`, then scaled down
    /// (floored) or up (ceiled) so the area stays within `tokenLimits` units², in Float as mtmd computes it.
    static func smartSize(width: Int, height: Int, unit: Int, tokenLimits: ClosedRange<Int>) -> (width: Int, height: Int) {
        let f = Float(unit)
        func round(_ x: Float) -> Int { Int((x / f).rounded()) * unit }
        func ceil(_ x: Float) -> Int { Int((x / f).rounded(.up)) * unit }
        func floor(_ x: Float) -> Int { Int((x / f).rounded(.down)) * unit }
        let minPixels = tokenLimits.lowerBound * unit * unit, maxPixels = tokenLimits.upperBound * unit * unit
        var w = max(unit, round(Float(width))), h = max(unit, round(Float(height)))
        if h * w > maxPixels {
            let beta = (Float(height) * Float(width) / Float(maxPixels)).squareRoot()
            h = max(unit, floor(Float(height) / beta))
            w = max(unit, floor(Float(width) / beta))
        } else if h * w < minPixels {
            let beta = (Float(minPixels) / (Float(height) * Float(width))).squareRoot()
            h = ceil(Float(height) * beta)
            w = ceil(Float(width) * beta)
        }
        return (w, h)
    }
}
