import VLMTensor
import VLMVision

extension ViTArchitecture {
    /// open_clip's VisionTransformer (the OpenAI ViT-B/32, ViT-B/16 layout): class token first, learned
    /// positions, ln_pre, pre-norm blocks, float32 LayerNorms, NCHW pixels.
    init(openCLIP config: CLIPConfig, layers: Int, patchSize: Int) {
        let vision = config.vision
        self.init(imageSize: vision.imageSize, patchSize: patchSize, width: vision.width, heads: vision.width / vision.headWidth,
                  mlpWidth: Int(Double(vision.width) * vision.mlpRatio), layers: layers, activation: config.activation,
                  normPlacement: .pre, layerNormEpsilon: 1e-5, layerNormAccumulation: .float,
                  classToken: .first, positions: .learned, pixelLayout: .channelsFirst)
    }
}

/// open_clip's ViT image tower in inference mode: VLMVision's tower, then ln_post and `proj` on the
/// class token (the embedding) and on the patch tokens (dense features) alike. Every weight matrix is
/// packed once at load (`PackedLinear`): an image is only 50 tokens, too few rows to amortise the
/// repacking a general matrix product does on every call. `Layer` is `PackedLinear` (fp32) or
/// `BF16Linear` (`precision: "bf16"`); the projection stays fp32.
struct CLIPVisionTower<Layer: LinearLayer>: ImageTower {
    let vit: VisionTransformer<Layer>
    let projection: Linear

    init(_ checkpoint: CheckpointReader, config: CLIPConfig, layers: Int, patchSize: Int, packing: (Linear) -> Layer) throws {
        let a = ViTArchitecture(openCLIP: config, layers: layers, patchSize: patchSize)
        let (width, grid) = (a.width, a.gridSide)
        let kernel = try checkpoint.tensor("visual.conv1.weight", [width, 3, patchSize, patchSize])
        do {
            vit = try VisionTransformer(
                architecture: a, patchEmbedding: packing(Linear(weight: kernel.reshaped([width, 3 * patchSize * patchSize]), bias: nil)),
                classEmbedding: try checkpoint.tensor("visual.class_embedding", [width]).storage,
                positionEmbedding: try checkpoint.tensor("visual.positional_embedding", [grid * grid + 1, width]).storage,
                preNorm: try checkpoint.layerNorm("visual.ln_pre.", width: width),
                blocks: try checkpoint.transformer(prefix: "visual.transformer.", width: width, heads: a.heads, layers: layers,
                                                   mlpRatio: config.vision.mlpRatio, activation: config.activation).blocks
                    .map { $0.convertingWeights(packing) },
                postNorm: try checkpoint.layerNorm("visual.ln_post.", width: width))
        } catch let error as VisionError {
            throw CLIPError.unsupportedArchitecture("\(error)")
        }
        projection = try checkpoint.projection("visual.proj", in: width, out: config.embedDim)
    }

    func encode(_ pixels: [Float], count: Int, scratch: ScratchBuffer, compute: ComputeContext) throws -> [Float] {
        try encodeWithDense(pixels, count: count, dense: false, scratch: scratch, compute: compute).pooled
    }

    func encodeDense(_ pixels: [Float], count: Int, scratch: ScratchBuffer, compute: ComputeContext) throws
        -> (values: [Float], gridHeight: Int, gridWidth: Int)
    {
        let grid = vit.architecture.gridSide
        let outputs = try forward(pixels, count: count, outputs: .patches, scratch: scratch, compute: compute)
        return (projection(outputs.patches!, rows: count * grid * grid), grid, grid)
    }

    func encodeWithDense(_ pixels: [Float], count: Int, dense: Bool, scratch: ScratchBuffer, compute: ComputeContext) throws
        -> (pooled: [Float], dense: (values: [Float], gridHeight: Int, gridWidth: Int)?)
    {
        let grid = vit.architecture.gridSide
        let outputs = try forward(pixels, count: count, outputs: dense ? [.pooled, .patches] : .pooled, scratch: scratch,
                                  compute: compute)
        return (projection(outputs.pooled!, rows: count),
                outputs.patches.map { (projection($0, rows: count * grid * grid), grid, grid) })
    }

    private func forward(_ pixels: [Float], count: Int, outputs: ViTOutputRequest, scratch: ScratchBuffer,
                         compute: ComputeContext) throws -> ViTOutputs {
        try vit.forward(pixels, count: count, outputs: outputs, scratch: scratch, compute: compute)
    }
}
