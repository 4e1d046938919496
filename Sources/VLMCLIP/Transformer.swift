import VLMTensor

/// open_clip's ResidualAttentionBlock (pre-norm):
///     x = x + attn(ln_1(x));  x = x + mlp(ln_2(x)),  mlp = c_proj(act(c_fc(·)))
struct ResidualAttentionBlock: Sendable {
    let norm1: LayerNorm
    let attention: MultiHeadAttention
    let norm2: LayerNorm
    let fullyConnected: Linear
    let activation: Activation
    let projection: Linear

    init(_ checkpoint: CheckpointReader, prefix: String, width: Int, heads: Int, mlpWidth: Int, activation: Activation) throws {
        norm1 = try checkpoint.layerNorm(prefix + "ln_1.", width: width)
        attention = MultiHeadAttention(
            inProjection: Linear(
                weight: try checkpoint.tensor(prefix + "attn.in_proj_weight", [3 * width, width]),
                bias: try checkpoint.tensor(prefix + "attn.in_proj_bias", [3 * width])),
            outProjection: try checkpoint.linear(prefix + "attn.out_proj.", in: width, out: width),
            heads: heads)
        norm2 = try checkpoint.layerNorm(prefix + "ln_2.", width: width)
        fullyConnected = try checkpoint.linear(prefix + "mlp.c_fc.", in: width, out: mlpWidth)
        projection = try checkpoint.linear(prefix + "mlp.c_proj.", in: mlpWidth, out: width)
        self.activation = activation
    }

    /// Updates `x` in place: sequences of `sequenceLengths` rows stored back to back, [Σ lengths, width].
    func apply(_ x: inout [Float], sequenceLengths: [Int], causal: Bool, scratch: ScratchBuffer) {
        let rows = sequenceLengths.reduce(0, +)
        var normed = x
        norm1(&normed, rows: rows)
        var attended = [Float](repeating: 0, count: x.count)
        normed.withUnsafeBufferPointer { input in
            attended.withUnsafeMutableBufferPointer { output in
                attention.apply(input.baseAddress!, sequenceLengths: sequenceLengths, causal: causal,
                                into: output.baseAddress!, scratch: scratch)
            }
        }
        add(&x, attended)

        normed = x
        norm2(&normed, rows: rows)
        var hidden = fullyConnected(normed, rows: rows)
        activation(&hidden)
        add(&x, projection(hidden, rows: rows))
    }
}

/// A stack of residual attention blocks (open_clip's Transformer).
struct Transformer: Sendable {
    let blocks: [ResidualAttentionBlock]

    init(_ checkpoint: CheckpointReader, prefix: String, width: Int, heads: Int, layers: Int, mlpRatio: Double, activation: Activation) throws {
        let mlpWidth = Int(Double(width) * mlpRatio)
        blocks = try (0..<layers).map { i in
            try ResidualAttentionBlock(checkpoint, prefix: "\(prefix)resblocks.\(i).", width: width, heads: heads,
                                       mlpWidth: mlpWidth, activation: activation)
        }
    }

    func apply(_ x: inout [Float], sequenceLengths: [Int], causal: Bool, scratch: ScratchBuffer,
               shouldCancel: () -> Bool) throws {
        for block in blocks {
            if shouldCancel() { throw CLIPError.cancelled }
            block.apply(&x, sequenceLengths: sequenceLengths, causal: causal, scratch: scratch)
        }
    }
}

/// x += y elementwise.
func add(_ x: inout [Float], _ y: [Float]) {
    precondition(x.count == y.count)
    x.withUnsafeMutableBufferPointer { x in
        y.withUnsafeBufferPointer { y in
            for i in x.indices { x[i] += y[i] }
        }
    }
}
