import VLMTensor

/// OpenAI CLIP's ModifiedResNet image tower (open_clip `modified_resnet.py`), in inference mode:
/// - a 3-convolution stem with an average pool instead of a max pool,
/// - anti-aliased strided Bottlenecks: stride is applied by an average pool after the 3×3 convolution
///   (and before the 1×1 downsample convolution), never by a strided convolution,
/// - an attention pool (QKV attention of the mean feature over all positions) instead of global average pooling.
/// Every batch norm is folded into the preceding convolution at load time. Feature maps are kept
/// channels-last (NHWC) from the stem to the attention pool: 1×1 convolutions are then plain matrix
/// products over the whole batch, and the attention pool reads positions as rows without a transpose.
public struct ModifiedResNet: Sendable {
    /// The tower's shape: read from an open_clip config by VLMCLIP, or from any source of the same numbers.
    public struct Architecture: Sendable, Equatable {
        /// Input side in pixels (a multiple of 32).
        public var imageSize: Int
        /// Channels after the stem; stage i works at `width << i` planes (×4 out of each bottleneck).
        public var width: Int
        /// Bottleneck blocks per stage, e.g. [3, 4, 6, 3] for RN50.
        public var stageBlocks: [Int]
        /// Channels per attention-pool head.
        public var headWidth: Int
        /// Width of the attention pool's output (the embedding).
        public var outputWidth: Int

        public init(imageSize: Int, width: Int, stageBlocks: [Int], headWidth: Int, outputWidth: Int) {
            (self.imageSize, self.width, self.stageBlocks) = (imageSize, width, stageBlocks)
            (self.headWidth, self.outputWidth) = (headWidth, outputWidth)
        }
    }

    let stem: [ChannelsLastConv2D]  // three 3×3 convolutions, the first with stride 2, each followed by ReLU
    let stages: [[Bottleneck]]
    let attentionPool: AttentionPool2D
    let imageSize: Int

    /// The convolutions' products run at `precision`; the attention pool stays fp32 (a few percent of the work).
    /// `checkpoint` holds open_clip's state-dict names (`visual.conv1.weight`, `visual.layer1.0.conv1.weight`, ...).
    public init(_ checkpoint: some StateDictReader, architecture: Architecture, precision: MatrixPrecision = .fp32) throws {
        let width = architecture.width
        imageSize = architecture.imageSize
        stem = try [
             checkpoint.convolutionWithBatchNorm("visual.conv1.weight", "visual.bn1.", in: 3, out: width / 2, kernel: 3, stride: 2, padding: 1),
            try checkpoint.convolutionWithBatchNorm("visual.conv2.weight", "visual.bn2.", in: width / 2, out: width / 2, kernel: 3, padding: 1),
            try checkpoint.convolutionWithBatchNorm("visual.conv3.weight", "visual.bn3.", in: width / 2, out: width, kernel: 3, padding: 1),
        ].map { ChannelsLastConv2D($0, precision: precision) }
        var inPlanes = width
        var stages: [[Bottleneck]] = []
        for (index, blocks) in architecture.stageBlocks.enumerated() {
            let planes = width << index
            var stage: [Bottleneck] = []
            for block in 0..<blocks {
                let stride = (index > 0 && block == 0) ? 2 : 1
                stage.append(try Bottleneck(checkpoint, prefix: "visual.layer\(index + 1).\(block).",
                                            inPlanes: inPlanes, planes: planes, stride: stride, precision: precision))
                inPlanes = planes * Bottleneck.expansion
            }
            stages.append(stage)
        }
        self.stages = stages
        let featureWidth = width * 32
        attentionPool = try AttentionPool2D(
            checkpoint, prefix: "visual.attnpool.", grid: architecture.imageSize / 32, width: featureWidth,
            heads: featureWidth / architecture.headWidth, outputDim: architecture.outputWidth)
    }

    /// The stem and the four stages: NCHW pixels → channels-last [count, size/32, size/32, 32·width]
    /// (`size`: the input side, the model's unless given).
    private func features(_ pixels: [Float], count: Int, size: Int? = nil, scratch: ScratchBuffer, compute: ComputeContext) throws
        -> (values: [Float], height: Int, width: Int)
    {
        let side = size ?? imageSize
        let channelsLast = transposeInner(pixels, batch: count, rows: stem[0].inChannels, cols: side * side)
        var x = (values: channelsLast, height: side, width: side)
        for conv in stem {
            x = conv(x.values, batch: count, height: x.height, width: x.width, scratch: scratch, compute: compute, relu: true)
        }
        x = averagePool2DChannelsLast(x.values, images: count, height: x.height, width: x.width, channels: stem[2].outChannels, kernel: 2,
                                      compute: compute)
        for stage in stages {
            for block in stage {
                try compute.checkCancellation()
                x = block.apply(x.values, batch: count, height: x.height, width: x.width, scratch: scratch, compute: compute)
            }
        }
        return x
    }

    public func encode(_ pixels: [Float], count: Int, scratch: ScratchBuffer, compute: ComputeContext) throws -> [Float] {
        let x = try features(pixels, count: count, scratch: scratch, compute: compute)
        return attentionPool.pooled(x.values, batch: count, scratch: scratch, compute: compute)
    }

    public func encodeDense(_ pixels: [Float], count: Int, scratch: ScratchBuffer, compute: ComputeContext) throws
        -> (values: [Float], gridHeight: Int, gridWidth: Int)
    {
        let x = try features(pixels, count: count, scratch: scratch, compute: compute)
        return (attentionPool.perPosition(x.values, batch: count, compute: compute), x.height, x.width)
    }

    /// Per-cell features with the trunk run at `size` px (NativeResolution.swift resizes the positional embedding).
    public func encodeDense(_ pixels: [Float], count: Int, size: Int, scratch: ScratchBuffer, compute: ComputeContext) throws
        -> (values: [Float], gridHeight: Int, gridWidth: Int)
    {
        let x = try features(pixels, count: count, size: size, scratch: scratch, compute: compute)
        return (attentionPool.perPosition(x.values, batch: count, gridHeight: x.height, gridWidth: x.width, compute: compute), x.height, x.width)
    }

    /// The pooled embedding and the per-position features share the trunk: one pass, two heads.
    public func encodeWithDense(_ pixels: [Float], count: Int, dense: Bool, scratch: ScratchBuffer, compute: ComputeContext) throws
        -> (pooled: [Float], dense: (values: [Float], gridHeight: Int, gridWidth: Int)?)
    {
        let x = try features(pixels, count: count, scratch: scratch, compute: compute)
        let pooled = attentionPool.pooled(x.values, batch: count, scratch: scratch, compute: compute)
        return (pooled, dense ? (attentionPool.perPosition(x.values, batch: count, compute: compute), x.height, x.width) : nil)
    }
}

/// The ResNet bottleneck: 1×1 reduce, 3×3, (average pool when strided), 1×1 expand (×4), plus a shortcut.
struct Bottleneck: Sendable {
    static let expansion = 4
    let reduce: ChannelsLastConv2D
    let spatial: ChannelsLastConv2D
    let expand: ChannelsLastConv2D
    let stride: Int
    /// avgpool(stride) then 1×1 convolution (+BN), present when the shape changes.
    let downsample: ChannelsLastConv2D?

    init(_ checkpoint: some StateDictReader, prefix: String, inPlanes: Int, planes: Int, stride: Int, precision: MatrixPrecision) throws {
        let outPlanes = planes * Self.expansion
        reduce = ChannelsLastConv2D(try checkpoint.convolutionWithBatchNorm(
            prefix + "conv1.weight", prefix + "bn1.", in: inPlanes, out: planes, kernel: 1), precision: precision)
        spatial = ChannelsLastConv2D(try checkpoint.convolutionWithBatchNorm(
            prefix + "conv2.weight", prefix + "bn2.", in: planes, out: planes, kernel: 3, padding: 1), precision: precision)
        expand = ChannelsLastConv2D(try checkpoint.convolutionWithBatchNorm(
            prefix + "conv3.weight", prefix + "bn3.", in: planes, out: outPlanes, kernel: 1), precision: precision)
        self.stride = stride
        downsample = (stride > 1 || inPlanes != outPlanes)
            ? ChannelsLastConv2D(try checkpoint.convolutionWithBatchNorm(
                prefix + "downsample.0.weight", prefix + "downsample.1.", in: inPlanes, out: outPlanes, kernel: 1), precision: precision)
            : nil
    }

    func apply(_ x: [Float], batch: Int, height: Int, width: Int, scratch: ScratchBuffer, compute: ComputeContext)
        -> (values: [Float], height: Int, width: Int)
    {
        var out = reduce(x, batch: batch, height: height, width: width, scratch: scratch, compute: compute, relu: true)
        out = spatial(out.values, batch: batch, height: out.height, width: out.width, scratch: scratch, compute: compute, relu: true)
        if stride > 1 {
            out = averagePool2DChannelsLast(out.values, images: batch, height: out.height, width: out.width,
                                            channels: spatial.outChannels, kernel: stride, compute: compute)
        }

        // The shortcut is written first; the expanding convolution then accumulates onto it (the
        // residual sum happens inside the matrix product) and applies the final ReLU.
        var sum: [Float]
        if let downsample {
            var shortcut = (values: x, height: height, width: width)
            if stride > 1 {
                shortcut = averagePool2DChannelsLast(x, images: batch, height: height, width: width, channels: reduce.inChannels, kernel: stride,
                                                     compute: compute)
            }
            sum = downsample(shortcut.values, batch: batch, height: shortcut.height, width: shortcut.width, scratch: scratch, compute: compute).values
        } else {
            sum = x
        }
        expand.accumulate(out.values, batch: batch, height: out.height, width: out.width, into: &sum, scratch: scratch, compute: compute, relu: true)
        return (sum, out.height, out.width)
    }
}

/// CLIP's attention pooling: the mean of all positions is prepended as an extra token, positional
/// embeddings are added, and the output is multi-head attention of that first token over all tokens
/// (query, key, value and output projections separate, as in open_clip's AttentionPool2d).
struct AttentionPool2D: Sendable {
    let positionalEmbedding: [Float]  // [cells + 1, width]
    // Packed at load: the pool sees 50 tokens per image, too few to amortise repacking 2048×2048 weights per call.
    let query: PackedLinear
    /// The key and value projections folded into the pooled query's attention (`pooled`).
    let folded: FoldedAttentionPool
    let value: PackedLinear  // per position, for the dense map
    let output: PackedLinear
    let heads: Int
    let width: Int
    let cells: Int

    init(_ checkpoint: some StateDictReader, prefix: String, grid: Int, width: Int, heads: Int, outputDim: Int) throws {
        cells = grid * grid
        positionalEmbedding = try checkpoint.tensor(prefix + "positional_embedding", [cells + 1, width]).storage
        query = PackedLinear(try checkpoint.linear(prefix + "q_proj.", in: width, out: width))
        let value = try checkpoint.linear(prefix + "v_proj.", in: width, out: width)
        folded = FoldedAttentionPool(key: try checkpoint.linear(prefix + "k_proj.", in: width, out: width), value: value, heads: heads)
        self.value = PackedLinear(value)
        output = PackedLinear(try checkpoint.linear(prefix + "c_proj.", in: width, out: outputDim))
        self.heads = heads
        self.width = width
    }

    /// [batch, cells + 1, width]: the mean token then every position, each plus its positional embedding.
    /// `positions` are channels-last features, [batch, cells, width].
    private func tokens(_ positions: [Float], batch: Int) -> [Float] {
        precondition(positions.count == batch * width * cells, "attention pool expects \(cells) cells of width \(width)")
        var tokens = [Float](repeating: 0, count: batch * (cells + 1) * width)
        for b in 0..<batch {
            let base = b * (cells + 1) * width
            for c in 0..<cells {
                for d in 0..<width { tokens[base + (c + 1) * width + d] = positions[(b * cells + c) * width + d] }
            }
            for d in 0..<width {
                var sum: Float = 0
                for c in 0..<cells { sum += tokens[base + (c + 1) * width + d] }
                tokens[base + d] = sum / Float(cells)
            }
            for i in 0..<((cells + 1) * width) { tokens[base + i] += positionalEmbedding[i] }
        }
        return tokens
    }

    /// [batch, outputDim]. Only the first token's output is used, so only its query is computed, and
    /// its attention over the tokens runs with the key and value projections folded in (exact up to
    /// float32 rounding; see `FoldedAttentionPool`).
    func pooled(_ features: [Float], batch: Int, scratch: ScratchBuffer, compute: ComputeContext) -> [Float] {
        let sequence = cells + 1
        let x = tokens(features, batch: batch)
        var firstTokens = [Float](repeating: 0, count: batch * width)
        for b in 0..<batch { for d in 0..<width { firstTokens[b * width + d] = x[b * sequence * width + d] } }
        let queries = query(firstTokens, rows: batch, compute: compute)
        let mixed = folded(queries: queries, tokens: x, batch: batch, sequence: sequence, scratch: scratch)
        return output(mixed, rows: batch, compute: compute)
    }

    /// [batch, cells, outputDim]: the value and output projections applied to each position token
    /// (with its positional embedding) on its own — the pooled output is an attention-weighted mix of
    /// exactly these vectors, which is what makes them usable as a dense map (MaskCLIP's observation).
    func perPosition(_ features: [Float], batch: Int, compute: ComputeContext) -> [Float] {
        let sequence = cells + 1
        let x = tokens(features, batch: batch)
        var positionTokens = [Float](repeating: 0, count: batch * cells * width)
        for b in 0..<batch {
            for i in 0..<(cells * width) { positionTokens[b * cells * width + i] = x[b * sequence * width + width + i] }
        }
        return output(value(positionTokens, rows: batch * cells, compute: compute), rows: batch * cells, compute: compute)
    }
}

/// Swaps the two inner axes of [batch, rows, cols] (NCHW feature maps ↔ [batch, positions, channels]).
func transposeInner(_ x: [Float], batch: Int, rows: Int, cols: Int) -> [Float] {
    var out = [Float](repeating: 0, count: x.count)
    x.withUnsafeBufferPointer { x in
        out.withUnsafeMutableBufferPointer { out in
            for b in 0..<batch {
                let src = x.baseAddress! + b * rows * cols
                let dst = out.baseAddress! + b * rows * cols
                for r in 0..<rows { for c in 0..<cols { dst[c * rows + r] = src[r * cols + c] } }
            }
        }
    }
    return out
}
