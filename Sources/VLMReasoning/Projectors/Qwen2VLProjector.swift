// The Qwen2-VL and Qwen2.5-VL projectors as llama.cpp runs them (tools/mtmd: clip_graph_qwen2vl, mtmd_image_preprocessor_dyn_size):
//
//   image -> fitted (bicubic, black bars, PAD_CEIL) into the "smart" size: each side a multiple of
//            28 = patch 14 x merge 2, the area kept within [minTokens, maxTokens] x 28²
//         -> 14 px patches, each embedded by two conv kernels (`v.patch_embd.weight`, `.weight.1`: the two
//            frames of a still image are the same picture) and summed
//         -> patches ordered by 2x2 block (block row, block column, then the block's own 2x2 in raster order)
//         -> pre-norm ViT blocks with 2-D rotary positions (row, column) on queries and keys: Qwen2-VL's
//            LayerNorm / quick-GELU blocks with full attention; Qwen2.5-VL's RMSNorm / SwiGLU blocks, attending
//            within 112 px windows (the blocks regrouped window by window) except every n_wa_pattern-th block
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
    /// `clip.projector_type` of Qwen2-VL and Qwen2.5-VL files.
    public static let fileTypes = ["qwen2vl_merger", "qwen2.5vl_merger"]
    public let projectorType: String
    public let hyperparameters: MMProjHyperparameters
    /// Image tokens an image may become (mtmd: 8...4096 for Qwen-VL, or its context's `image_min_tokens`
    /// ...`image_max_tokens`).
    public let tokenLimits: ClosedRange<Int>
    public static let defaultTokenLimits = 8...4096
    /// Patches merged per side (`clip.vision.spatial_merge_size`).
    public let mergeSize = 2
    /// Qwen2.5-VL: every `windowPattern`-th block attends over the whole image, the others within windows
    /// of `windowSide` x `windowSide` merged tokens (`clip.vision.n_wa_pattern`; mtmd's 112 px windows).
    public let windowPattern: Int?
    public let windowSide: Int
    let gguf: GGUFFile
    let patchKernels: (QuantizedLinear, QuantizedLinear)
    let encoder: TransformerEncoder<QuantizedLinear>
    let postNorm: LayerNorm?
    let merger: (QuantizedLinear, QuantizedLinear)

    public convenience init(url: URL, tokenLimits: ClosedRange<Int> = defaultTokenLimits) throws {
        try self.init(gguf: GGUFFile(url: url), tokenLimits: tokenLimits)
    }

    public init(gguf: GGUFFile, tokenLimits: ClosedRange<Int> = defaultTokenLimits) throws {
        self.gguf = gguf
        projectorType = try MMProjHyperparameters.projectorType(gguf)
        guard Self.fileTypes.contains(projectorType) else {
            throw MMProjError.notSupported("projector type '\(projectorType)' is not one of \(Self.fileTypes.joined(separator: ", "))")
        }
        var hp = try MMProjHyperparameters(gguf: gguf, projector: projectorType)
        hp.blocksRun = hp.blockCount
        hyperparameters = hp
        guard tokenLimits.lowerBound > 0 else { throw MMProjError.notSupported("an image token limit of \(tokenLimits)") }
        self.tokenLimits = tokenLimits
        if let merge = gguf.metadata["clip.vision.spatial_merge_size"]?.intValue, merge != mergeSize {
            throw MMProjError.notSupported("clip.vision.spatial_merge_size \(merge) (Qwen2-VL merges 2x2)")
        }
        let qwen25 = projectorType == "qwen2.5vl_merger"
        windowPattern = qwen25 ? try Self.windowPattern(gguf, blocks: hp.blockCount) : nil
        windowSide = max(1, 112 / hp.patchSize / mergeSize)
        let tensors = MMProjTensors(gguf: gguf)
        var architecture = ViTArchitecture(mmproj: hp, hasClassToken: false)
        // ggml's CPU activations: its fp16 tables for both GELUs (FFN_GELU_QUICK unless `clip.use_gelu`), its SiLU.
        let silu = gguf.metadata["clip.use_silu"]?.boolValue ?? false
        architecture.activation = silu ? .silu : hp.useGELU ? .geluTanhHalfTable : .quickGELUHalfTable
        if qwen25 { architecture.normStatistic = .rootMeanSquare }
        patchKernels = (try tensors.patchKernel("v.patch_embd.weight", architecture),
                        try tensors.patchKernel("v.patch_embd.weight.1", architecture))
        encoder = TransformerEncoder(blocks: try tensors.blocks(architecture))
        postNorm = try tensors.optionalNorm("v.post_ln", architecture)
        let merged = hp.width * mergeSize * mergeSize
        merger = (try tensors.linear("mm.0", in: merged, out: merged), try tensors.linear("mm.2", in: merged, out: hp.projectionWidth))
    }

    static func windowPattern(_ gguf: GGUFFile, blocks: Int) throws -> Int {
        let key = "clip.vision.n_wa_pattern"
        guard let pattern = gguf.metadata[key]?.intValue else { throw MMProjError.badKey(key: key, reason: "missing (Qwen2.5-VL needs it)") }
        guard pattern >= 1, pattern <= blocks else { throw MMProjError.badKey(key: key, reason: "\(pattern) is outside 1...\(blocks)") }
        return pattern
    }

    public var outputWidth: Int { hyperparameters.projectionWidth }

    public func imageTokens(for image: RGBImage, compute: ComputeContext) throws -> ImageTokens {
        let (embeddings, grid) = try encode(image, compute: compute)
        return ImageTokens(chunks: [.text("<|vision_start|>"), .embeddings(embeddings, count: grid.rows * grid.columns), .text("<|vision_end|>")],
                           layout: EmbeddingLayout(grid: grid))
    }

    /// Each merged token's 28 px cell of the smart-sized canvas, in raster order as the tokens come out,
    /// taken back through the fit that drew the image on it (`mtmdFitted`: its rounding may leave a pixel
    /// or two of padding at the sides).
    public func tokenGeometry(width: Int, height: Int) -> ImageTokenGeometry {
        let unit = tokenSide, size = canvasSize(width: width, height: height)
        let grid = PlacedGrid(columns: size.width / unit, rows: size.height / unit, canvasWidth: size.width, canvasHeight: size.height,
                              placement: PlacedGrid.mtmdFit(width: width, height: height, canvasWidth: size.width, canvasHeight: size.height),
                              imageWidth: width, imageHeight: height)
        return grid.geometry(tokenRegions: grid.cells)
    }

    /// A merged token's side in canvas pixels: patch x merge (28 for Qwen2-VL's 14 px patches).
    var tokenSide: Int { hyperparameters.patchSize * mergeSize }

    /// The canvas a `width` x `height` image is fitted into before the tower.
    func canvasSize(width: Int, height: Int) -> (width: Int, height: Int) {
        Self.smartSize(width: width, height: height, unit: tokenSide, tokenLimits: tokenLimits)
    }

    /// The image's tokens, [rows x columns][outputWidth] row-major, and their grid.
    public func encode(_ image: RGBImage, compute: ComputeContext = ComputeContext()) throws -> ([Float], EmbeddingLayout.Grid) {
        let hp = hyperparameters, unit = tokenSide
        let size = canvasSize(width: image.width, height: image.height)
        let input = try image.mtmdFitted(width: size.width, height: size.height, filter: .bicubic)
        let pixels = input.mtmdTowerInput(mean: hp.imageMean, std: hp.imageStd)
        let (patches, rows, columns) = blockOrderedPatches(pixels, width: size.width, height: size.height)
        let count = rows.count
        var x = patchKernels.0.forward(patches, rows: count, compute: compute)
        addInPlace(&x, patchKernels.1.forward(patches, rows: count, compute: compute))
        let grid = EmbeddingLayout.Grid(rows: size.height / unit, columns: size.width / unit)
        let group = mergeSize * mergeSize, tokens = count / group
        // Qwen2.5-VL: the 2x2 blocks regrouped window by window, so each window is one run of rows.
        let windows = windowPattern == nil ? nil : Self.windows(grid, side: windowSide)
        var order = Array(0..<tokens)
        if let windows {
            order = windows.order
            x = Self.gathering(x, groups: order, groupSize: group * hp.width)
        }
        let rotary = RotaryAngles.grid2D(rows: Self.gathering(rows, groups: order, groupSize: group),
                                         columns: Self.gathering(columns, groups: order, groupSize: group), headDimension: hp.headDimension)
        let scratch = ScratchBuffer()
        for (l, block) in encoder.blocks.enumerated() {
            try compute.checkCancellation()
            let full = windowPattern.map { (l + 1) % $0 == 0 } ?? true
            block.apply(&x, sequenceLengths: full ? [count] : windows!.lengths.map { $0 * group }, causal: false, rotary: rotary,
                        scratch: scratch, compute: compute)
        }
        postNorm?(&x, rows: count)
        // [count, width] is [count / 4, 4 * width]: a 2x2 block's states side by side.
        var hidden = merger.0.forward(x, rows: tokens, compute: compute)
        let gelu = Activation.geluTanhHalfTable  // ggml_gelu, as the merger's FFN_GELU runs it
        gelu(&hidden, compute: compute)
        let projected = merger.1.forward(hidden, rows: tokens, compute: compute)
        guard windows != nil else { return (projected, grid) }
        // Back to raster order: the token at window position i is grid token order[i].
        var raster = projected
        let width = hp.projectionWidth
        for (i, token) in order.enumerated() { raster.replaceSubrange((token * width)..<((token + 1) * width), with: projected[(i * width)..<((i + 1) * width)]) }
        return (raster, grid)
    }

    /// mtmd's Qwen2.5-VL windows over the merged-token grid: `side` x `side` tiles in raster order (cut at
    /// the edges), each listing its tokens in raster order; `order` is all of them, `lengths` the tokens per window.
    static func windows(_ grid: EmbeddingLayout.Grid, side: Int) -> (order: [Int], lengths: [Int]) {
        var order: [Int] = [], lengths: [Int] = []
        for top in stride(from: 0, to: grid.rows, by: side) {
            for left in stride(from: 0, to: grid.columns, by: side) {
                let rows = top..<min(top + side, grid.rows), columns = left..<min(left + side, grid.columns)
                for y in rows { for x in columns { order.append(y * grid.columns + x) } }
                lengths.append(rows.count * columns.count)
            }
        }
        return (order, lengths)
    }

    /// `values` as consecutive groups of `groupSize`, re-ordered so group i is the old group `groups[i]`.
    static func gathering<T>(_ values: [T], groups: [Int], groupSize: Int) -> [T] {
        groups.flatMap { values[($0 * groupSize)..<(($0 + 1) * groupSize)] }
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
