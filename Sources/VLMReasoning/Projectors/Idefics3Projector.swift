// The idefics3 projector (SmolVLM, SmolVLM2) as llama.cpp runs it (tools/mtmd: clip_graph_siglip with
// PROJECTOR_TYPE_IDEFICS3):
//
//   each view (tiles + global view, see Idefics3Preprocessing)
//     -> SigLIP tower (SigLIPTower): patch embedding (conv p x p, stride p, with bias, on F16-rounded
//        inputs as ggml's im2col) + learned positions, no class token, pre-norm blocks with ggml's
//        fp16-table tanh GELU, post-LayerNorm                       -> [side², width]
//     -> pixel shuffle by s = clip.vision.projector.scale_factor    -> [(side/s)², width·s²]
//     -> mm.model.fc (no bias)                                       -> [(side/s)², lmWidth]
//
// Pixel shuffle (transformers' Idefics3Connector.pixel_shuffle, ggml's build_patch_merge_permute):
// output token (Y, X) of the (side/s)² grid concatenates the s x s block of patches
// (Y·s + dy, X·s + dx), dy outer and dx inner, each patch's `width` values contiguous.
import Foundation
import VLMImage
import VLMLanguage
import VLMTensor
import VLMVision

/// `@unchecked Sendable`: immutable after load (weights are read-only views of a mapping).
public final class Idefics3Projector: MultimodalProjector, @unchecked Sendable {
    public let hyperparameters: MMProjHyperparameters
    /// `clip.vision.projector.scale_factor`: patches merged per side.
    public let scaleFactor: Int
    public let preprocessing: Idefics3Preprocessing
    let gguf: GGUFFile
    let vit: VisionTransformer<QuantizedLinear>
    /// mm.model.fc: [width·s²] -> [lmWidth].
    let projection: QuantizedLinear

    public static let longestEdgeKey = "clip.vision.preproc_image_size"

    public convenience init(url: URL) throws { try self.init(gguf: GGUFFile(url: url)) }

    /// Reads an opened mmproj file and checks every key and tensor, naming any that is missing or wrong.
    public init(gguf: GGUFFile) throws {
        self.gguf = gguf
        let hp = try SigLIPTower.hyperparameters(gguf, projector: "idefics3")
        hyperparameters = hp
        scaleFactor = try SigLIPTower.scaleFactor(gguf, gridSide: hp.gridSide, minimum: 2, fallback: nil)
        preprocessing = Idefics3Preprocessing(tileSize: hp.imageSize, longestEdge: try Self.longestEdge(gguf, tileSize: hp.imageSize))
        let tensors = MMProjTensors(gguf: gguf)
        vit = try SigLIPTower.load(tensors, hp)
        projection = try tensors.linear("mm.model.fc", in: hp.width * scaleFactor * scaleFactor, out: hp.projectionWidth, bias: false)
    }

    /// nil for files converted before llama.cpp wrote the key (they take mtmd's older slicing).
    private static func longestEdge(_ gguf: GGUFFile, tileSize: Int) throws -> Int? {
        let key = longestEdgeKey
        guard let raw = gguf.metadata[key] else { return nil }
        guard let value = raw.intValue else { throw MMProjError.badKey(key: key, reason: "not an integer") }
        guard value >= tileSize, value <= MMProjHyperparameters.maxImageSize * 4 else {
            throw MMProjError.badKey(key: key, reason: "\(value) is outside \(tileSize)...\(MMProjHyperparameters.maxImageSize * 4)")
        }
        return value
    }

    public var projectorType: String { "idefics3" }
    public var outputWidth: Int { hyperparameters.projectionWidth }
    /// Image tokens per view (tile or global view).
    public var tokensPerView: Int { (hyperparameters.gridSide / scaleFactor) * (hyperparameters.gridSide / scaleFactor) }

    /// The tiles row by row, then the global view, with mtmd's marker text around them.
    public func imageTokens(for image: RGBImage, compute: ComputeContext) throws -> ImageTokens {
        let views = try preprocessing.views(image)
        var encoded: [ImageChunk] = []
        for view in views.tiles + [views.global] {
            encoded.append(.embeddings(try encode(view, compute: compute), count: tokensPerView))
        }
        return ImageTokens(chunks: Idefics3Preprocessing.layout(rows: views.rows, columns: views.columns, views: encoded))
    }

    /// Tiles' tokens at their place in the tiled canvas (the image stretched over it, or fitted inside it
    /// for untiled files); the global view's over the whole image (stretched to one tile). The grid is
    /// the tiles' token grid, so a global-view token covers a block of cells.
    public func tokenGeometry(width: Int, height: Int) -> ImageTokenGeometry {
        let per = hyperparameters.gridSide / scaleFactor, tile = hyperparameters.imageSize
        let (rows, columns) = preprocessing.grid(width: width, height: height)
        let canvas = (width: columns * tile, height: rows * tile)
        let placement = preprocessing.longestEdge == nil
            ? PlacedGrid.mtmdFit(width: width, height: height, canvasWidth: canvas.width, canvasHeight: canvas.height)
            : PlacedGrid.stretched(width: canvas.width, height: canvas.height)
        let tiles = PlacedGrid(columns: columns * per, rows: rows * per, canvasWidth: canvas.width, canvasHeight: canvas.height,
                               placement: placement, imageWidth: width, imageHeight: height)
        let global = PlacedGrid(side: per, canvas: tile, placement: PlacedGrid.stretched(width: tile, height: tile),
                                imageWidth: width, imageHeight: height)
        var regions: [TokenRegion] = []
        for row in 0..<rows {
            for column in 0..<columns {
                for y in 0..<per { for x in 0..<per { regions.append(tiles.cell(row: row * per + y, column: column * per + x)) } }
            }
        }
        return tiles.geometry(tokenRegions: regions + global.cells)
    }

    /// One tile-sized view's image tokens: [tokensPerView][outputWidth], row-major.
    public func encode(_ view: RGBImage, compute: ComputeContext = ComputeContext()) throws -> [Float] {
        let hp = hyperparameters
        guard view.width == hp.imageSize, view.height == hp.imageSize else {
            throw MMProjError.notSupported("a \(view.width)x\(view.height) view; the tower takes \(hp.imageSize)x\(hp.imageSize)")
        }
        let states = try SigLIPTower.patchStates(vit, view, hp, compute: compute)
        let merged = Self.pixelShuffle(states, side: hp.gridSide, width: hp.width, scale: scaleFactor)
        return projection.forward(merged, rows: tokensPerView, compute: compute)
    }

    /// [side², width] patch states, row-major over the grid -> [(side/scale)², width·scale²] (see the header).
    static func pixelShuffle(_ x: [Float], side: Int, width: Int, scale: Int) -> [Float] {
        precondition(x.count == side * side * width && side % scale == 0, "pixel shuffle of \(x.count) values, side \(side), scale \(scale)")
        let merged = side / scale
        var out = [Float](repeating: 0, count: x.count)
        var o = 0
        for y in 0..<merged {
            for x0 in 0..<merged {
                for dy in 0..<scale {
                    for dx in 0..<scale {
                        let patch = (y * scale + dy) * side + x0 * scale + dx
                        out.replaceSubrange(o..<(o + width), with: x[(patch * width)..<((patch + 1) * width)])
                        o += width
                    }
                }
            }
        }
        return out
    }
}
