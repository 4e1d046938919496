import VLMTensor

/// open_clip's VisionTransformer (the OpenAI ViT-B/32, ViT-B/16 layout), in inference mode:
/// patchify with a stride-p convolution, prepend the class token, add positional embeddings, ln_pre,
/// the transformer, ln_post, and project the class token with `proj`.
struct VisionTransformer: ImageTower {
    let patchEmbedding: Conv2D
    let classEmbedding: [Float]  // [width]
    let positionalEmbedding: [Float]  // [cells + 1, width]
    let preNorm: LayerNorm
    let transformer: Transformer
    let postNorm: LayerNorm
    let projection: Linear
    let imageSize: Int
    let grid: Int
    let width: Int

    init(_ checkpoint: CheckpointReader, config: CLIPConfig, layers: Int, patchSize: Int) throws {
        let vision = config.vision
        width = vision.width
        imageSize = vision.imageSize
        grid = imageSize / patchSize
        patchEmbedding = Conv2D(weight: try checkpoint.tensor("visual.conv1.weight", [width, 3, patchSize, patchSize]), stride: patchSize)
        classEmbedding = try checkpoint.tensor("visual.class_embedding", [width]).storage
        positionalEmbedding = try checkpoint.tensor("visual.positional_embedding", [grid * grid + 1, width]).storage
        preNorm = try checkpoint.layerNorm("visual.ln_pre.", width: width)
        transformer = try Transformer(checkpoint, prefix: "visual.transformer.", width: width, heads: width / vision.headWidth,
                                      layers: layers, mlpRatio: vision.mlpRatio, activation: config.activation)
        postNorm = try checkpoint.layerNorm("visual.ln_post.", width: width)
        projection = try checkpoint.projection("visual.proj", in: width, out: config.embedDim)
    }

    /// Token states after the transformer: [count, cells + 1, width], class token first.
    private func tokenStates(_ pixels: [Float], count: Int, scratch: ScratchBuffer, shouldCancel: () -> Bool) throws -> [Float] {
        let patches = patchEmbedding(pixels, batch: count, height: imageSize, width: imageSize, scratch: scratch)
        let cells = grid * grid
        let patchRows = transposeInner(patches.values, batch: count, rows: width, cols: cells)  // [count, cells, width]
        let sequence = cells + 1
        var x = [Float](repeating: 0, count: count * sequence * width)
        for b in 0..<count {
            let base = b * sequence * width
            for d in 0..<width { x[base + d] = classEmbedding[d] }
            for i in 0..<(cells * width) { x[base + width + i] = patchRows[b * cells * width + i] }
            for i in 0..<(sequence * width) { x[base + i] += positionalEmbedding[i] }
        }
        preNorm(&x, rows: count * sequence)
        try transformer.apply(&x, sequenceLengths: [Int](repeating: sequence, count: count), causal: false,
                              scratch: scratch, shouldCancel: shouldCancel)
        return x
    }

    func encode(_ pixels: [Float], count: Int, scratch: ScratchBuffer, shouldCancel: () -> Bool) throws -> [Float] {
        let x = try tokenStates(pixels, count: count, scratch: scratch, shouldCancel: shouldCancel)
        let sequence = grid * grid + 1
        var classTokens = [Float](repeating: 0, count: count * width)
        for b in 0..<count { for d in 0..<width { classTokens[b * width + d] = x[b * sequence * width + d] } }
        postNorm(&classTokens, rows: count)
        return projection(classTokens, rows: count)
    }

    /// Patch tokens after ln_post and proj, the same path the class token takes.
    func encodeDense(_ pixels: [Float], count: Int, scratch: ScratchBuffer, shouldCancel: () -> Bool) throws
        -> (values: [Float], gridHeight: Int, gridWidth: Int)
    {
        let x = try tokenStates(pixels, count: count, scratch: scratch, shouldCancel: shouldCancel)
        let cells = grid * grid
        var patches = [Float](repeating: 0, count: count * cells * width)
        for b in 0..<count {
            for i in 0..<(cells * width) { patches[b * cells * width + i] = x[(b * (cells + 1) + 1) * width + i] }
        }
        postNorm(&patches, rows: count * cells)
        return (projection(patches, rows: count * cells), grid, grid)
    }
}
