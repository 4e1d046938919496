import VLMTensor
import VLMVision

/// Dense per-position image features, for attributing a text query to image regions.
public struct DenseImageFeatures: Sendable, Equatable {
    /// Feature grid rows and columns (e.g. 7×7 for RN50 and ViT-B/32 at 224 px).
    public let gridHeight: Int
    public let gridWidth: Int
    /// One [gridHeight · gridWidth][embedDim] map per image, row-major cells, not normalised.
    public let features: [[[Float]]]
}

/// An image encoder: NCHW pixel batches in, embedding rows out.
protocol ImageTower: Sendable {
    /// Unnormalised embeddings, [count, embedDim] row-major.
    func encode(_ pixels: [Float], count: Int, scratch: ScratchBuffer, compute: ComputeContext) throws -> [Float]
    /// Per-cell features, [count, gridHeight · gridWidth, embedDim] row-major.
    func encodeDense(_ pixels: [Float], count: Int, scratch: ScratchBuffer, compute: ComputeContext) throws
        -> (values: [Float], gridHeight: Int, gridWidth: Int)
    /// The embeddings and, with `dense`, the per-cell features too, from one pass of the trunk.
    func encodeWithDense(_ pixels: [Float], count: Int, dense: Bool, scratch: ScratchBuffer, compute: ComputeContext) throws
        -> (pooled: [Float], dense: (values: [Float], gridHeight: Int, gridWidth: Int)?)
}

/// VLMVision's ModifiedResNet is one of CLIP's towers as it stands (its output is the embedding).
extension ModifiedResNet: ImageTower {}

extension ModifiedResNet.Architecture {
    /// open_clip's ModifiedResNet (`vision_cfg.layers` a list of four stage depths): the attention pool
    /// has `32 · width / head_width` heads and projects to `embed_dim`.
    init(openCLIP config: CLIPConfig, stageBlocks: [Int]) {
        self.init(imageSize: config.vision.imageSize, width: config.vision.width, stageBlocks: stageBlocks,
                  headWidth: config.vision.headWidth, outputWidth: config.embedDim)
    }
}
