// The transformer encoder block every tower of this package runs (CLIP's image and text towers, the
// LLaVA vision tower), written once against `LinearLayer` so float32 checkpoints and GGUF files share it:
//
//   pre-norm  (ViT, CLIP):           x = x + attn(ln_1(x));   x = x + mlp(ln_2(x))
//   post-norm (BERT, the 2017 paper): x = ln_1(x + attn(x));   x = ln_2(x + mlp(x))
//
// with mlp = down(act(up(·))).
import VLMTensor

/// Where a block's LayerNorms sit relative to its residual connections.
public enum NormPlacement: Sendable, Equatable {
    /// Normalise each sublayer's input; the residual stream is never normalised.
    case pre
    /// Normalise after each residual addition.
    case post
}

/// Multi-head self-attention within each of several sequences stored back to back.
public struct SelfAttention<Weights: LinearLayer>: Sendable {
    /// How queries, keys and values are projected from the input.
    public enum Projection: Sendable {
        /// One [3·width, width] matrix: query rows, then key rows, then value rows (PyTorch's
        /// nn.MultiheadAttention `in_proj`).
        case packed(Weights)
        /// Three [width, width] matrices (llama.cpp's `attn_q`, `attn_k`, `attn_v`).
        case separate(query: Weights, key: Weights, value: Weights)
    }

    public let projection: Projection
    public let output: Weights
    public let heads: Int

    public init(projection: Projection, output: Weights, heads: Int) {
        let width = output.outFeatures
        switch projection {
        case let .packed(p):
            precondition(p.inFeatures == width && p.outFeatures == 3 * width, "packed projection must be [3·\(width), \(width)]")
        case let .separate(q, k, v):
            precondition([q, k, v].allSatisfy { $0.inFeatures == width && $0.outFeatures == width },
                         "query, key and value projections must be [\(width), \(width)]")
        }
        precondition(output.inFeatures == width && width % heads == 0, "width \(width) and \(heads) heads")
        (self.projection, self.output, self.heads) = (projection, output, heads)
    }

    public var width: Int { output.outFeatures }

    /// [Σ lengths, width] in and out; with `causal`, position i sees positions 0...i of its sequence.
    /// `rotary` (one row of angles per input row) turns queries and keys before their products: the
    /// tower's positions are rotary rather than added (Qwen2-VL).
    public func callAsFunction(_ x: [Float], sequenceLengths: [Int], causal: Bool, rotary: RotaryAngles? = nil, scratch: ScratchBuffer,
                               compute: ComputeContext) -> [Float] {
        let rows = sequenceLengths.reduce(0, +), width = self.width
        var mixed = [Float](repeating: 0, count: rows * width)
        switch projection {
        case .packed where rotary != nil:
            preconditionFailure("rotary positions need separate query and key projections")
        case let .packed(p):
            let qkv = p.forward(x, rows: rows, compute: compute)
            qkv.withUnsafeBufferPointer { qkv in
                let base = qkv.baseAddress!
                attend(base, base + width, base + 2 * width, stride: 3 * width, sequenceLengths, causal, &mixed, compute)
            }
        case let .separate(query, key, value):
            var (q, k, v) = (query.forward(x, rows: rows, compute: compute), key.forward(x, rows: rows, compute: compute), value.forward(x, rows: rows, compute: compute))
            if let rotary {
                precondition(rotary.rows == rows, "\(rotary.rows) rows of rotary angles for \(rows) tokens")
                q.withUnsafeMutableBufferPointer { rotary.rotate($0.baseAddress!, stride: width, heads: heads, headDimension: width / heads) }
                k.withUnsafeMutableBufferPointer { rotary.rotate($0.baseAddress!, stride: width, heads: heads, headDimension: width / heads) }
            }
            q.withUnsafeBufferPointer { q in
                k.withUnsafeBufferPointer { k in
                    v.withUnsafeBufferPointer { v in
                        attend(q.baseAddress!, k.baseAddress!, v.baseAddress!, stride: width, sequenceLengths, causal, &mixed, compute)
                    }
                }
            }
        }
        return output.forward(mixed, rows: rows, compute: compute)
    }

    /// The attention output at row `queryPosition` of each sequence only, [sequences, width]: every row
    /// still projects its key and value, but only the kept rows attend and go through the output
    /// projection (with separate projections, only they project a query). Per kept row the arithmetic
    /// of the full call.
    public func callAsFunction(_ x: [Float], sequenceLengths: [Int], queryPosition: Int, compute: ComputeContext) -> [Float] {
        let rows = sequenceLengths.reduce(0, +), width = self.width, count = sequenceLengths.count
        let keptRows = sequenceStarts(sequenceLengths).map { $0 + queryPosition }
        var mixed = [Float](repeating: 0, count: count * width)
        func attend(_ queries: UnsafePointer<Float>, queryStride: Int, queryRows: [Int], _ keys: UnsafePointer<Float>,
                    _ values: UnsafePointer<Float>, keyStride: Int) {
            mixed.withUnsafeMutableBufferPointer { mixed in
                scaledDotProductAttention(
                    queries: queries, queryStride: queryStride, queryRows: queryRows, keys: keys, values: values, keyStride: keyStride,
                    sequenceLengths: sequenceLengths, heads: heads, headDim: width / heads, output: mixed.baseAddress!,
                    outputStride: width, compute: compute)
            }
        }
        switch projection {
        case let .packed(p):
            let qkv = p.forward(x, rows: rows, compute: compute)
            qkv.withUnsafeBufferPointer { qkv in
                let base = qkv.baseAddress!
                attend(base, queryStride: 3 * width, queryRows: keptRows, base + width, base + 2 * width, keyStride: 3 * width)
            }
        case let .separate(query, key, value):
            let q = query.forward(gatherRows(x, keptRows, width: width), rows: count, compute: compute)
            let (k, v) = (key.forward(x, rows: rows, compute: compute), value.forward(x, rows: rows, compute: compute))
            q.withUnsafeBufferPointer { q in
                k.withUnsafeBufferPointer { k in
                    v.withUnsafeBufferPointer { v in
                        attend(q.baseAddress!, queryStride: width, queryRows: Array(0..<count), k.baseAddress!, v.baseAddress!,
                               keyStride: width)
                    }
                }
            }
        }
        return output.forward(mixed, rows: count, compute: compute)
    }

    /// softmax(QKᵀ/√d)V per head and sequence, the pairs split across threads; Q, K, V rows are `stride` apart.
    private func attend(
        _ queries: UnsafePointer<Float>, _ keys: UnsafePointer<Float>, _ values: UnsafePointer<Float>, stride: Int,
        _ sequenceLengths: [Int], _ causal: Bool, _ mixed: inout [Float], _ compute: ComputeContext
    ) {
        let width = self.width
        mixed.withUnsafeMutableBufferPointer { mixed in
            scaledDotProductAttention(
                queries: queries, keys: keys, values: values, stride: stride, sequenceLengths: sequenceLengths,
                heads: heads, headDim: width / heads, causal: causal, output: mixed.baseAddress!, outputStride: width, compute: compute)
        }
    }
}

/// One encoder block: self-attention and an MLP, each inside a residual connection with a LayerNorm.
public struct TransformerBlock<Weights: LinearLayer>: Sendable {
    public let norm1: LayerNorm
    public let attention: SelfAttention<Weights>
    public let norm2: LayerNorm
    /// The MLP: down(activation(up(x))), or with a gate down(activation(gate(x)) · up(x)) (SwiGLU,
    /// Shazeer 2020; Qwen2.5-VL's tower).
    public let up: Weights
    public let activation: Activation
    public let down: Weights
    public let placement: NormPlacement
    public let gate: Weights?

    public init(norm1: LayerNorm, attention: SelfAttention<Weights>, norm2: LayerNorm, up: Weights, activation: Activation,
                down: Weights, placement: NormPlacement, gate: Weights? = nil) {
        let width = attention.width
        precondition(norm1.width == width && norm2.width == width, "layer norms must be \(width) wide")
        precondition(up.inFeatures == width && down.outFeatures == width && down.inFeatures == up.outFeatures,
                     "MLP [\(up.inFeatures)→\(up.outFeatures)→\(down.outFeatures)] does not fit width \(width)")
        precondition(gate.map { $0.inFeatures == width && $0.outFeatures == up.outFeatures } ?? true, "gate must match the up projection")
        (self.norm1, self.attention, self.norm2) = (norm1, attention, norm2)
        (self.up, self.activation, self.down, self.placement, self.gate) = (up, activation, down, placement, gate)
    }

    public var width: Int { attention.width }

    /// Updates `x` in place: sequences of `sequenceLengths` rows stored back to back, [Σ lengths, width];
    /// `rotary` as `SelfAttention` takes it.
    public func apply(_ x: inout [Float], sequenceLengths: [Int], causal: Bool, rotary: RotaryAngles? = nil, scratch: ScratchBuffer,
                      compute: ComputeContext) {
        let rows = sequenceLengths.reduce(0, +)
        precondition(x.count == rows * width, "block input has \(x.count) values, expected \(rows)×\(width)")
        let attended = attention(attentionInput(x, rows: rows, compute: compute), sequenceLengths: sequenceLengths, causal: causal, rotary: rotary,
                                 scratch: scratch, compute: compute)
        finish(&x, rows: rows, attended: attended, compute: compute)
    }

    /// `apply`'s output at row `position` of each sequence only, [sequences, width]: the last block of a
    /// tower whose caller wants only its class token. Every row still gives its key and value, but the
    /// residual stream, out projection, norms and MLP run for the kept rows alone (about three quarters of
    /// the block saved), each kept row with the same arithmetic as in `apply`. Non-causal, no rotary.
    public func applied(_ x: [Float], sequenceLengths: [Int], keepingPosition position: Int, compute: ComputeContext) -> [Float] {
        let rows = sequenceLengths.reduce(0, +)
        precondition(x.count == rows * width, "block input has \(x.count) values, expected \(rows)×\(width)")
        precondition(sequenceLengths.allSatisfy { position < $0 }, "position \(position) past a sequence of \(sequenceLengths)")
        var kept = gatherRows(x, sequenceStarts(sequenceLengths).map { $0 + position }, width: width)
        let attended = attention(attentionInput(x, rows: rows, compute: compute), sequenceLengths: sequenceLengths, queryPosition: position,
                                 compute: compute)
        finish(&kept, rows: sequenceLengths.count, attended: attended, compute: compute)
        return kept
    }

    /// What the attention reads: the normalised rows (pre-norm) or the residual stream itself (post-norm).
    private func attentionInput(_ x: [Float], rows: Int, compute: ComputeContext) -> [Float] {
        placement == .pre ? norm1.normalized(x, rows: rows, compute: compute) : x
    }

    /// The rest of the block after attention, on the residual stream `x` ([rows, width]) and the
    /// attention's output for the same rows.
    private func finish(_ x: inout [Float], rows: Int, attended: [Float], compute: ComputeContext) {
        addInPlace(&x, attended)
        switch placement {
        case .pre:
            addInPlace(&x, mlp(norm2.normalized(x, rows: rows, compute: compute), rows: rows, compute: compute))
        case .post:
            norm1(&x, rows: rows, compute: compute)
            addInPlace(&x, mlp(x, rows: rows, compute: compute))
            norm2(&x, rows: rows, compute: compute)
        }
    }

    public func mlp(_ x: [Float], rows: Int, compute: ComputeContext) -> [Float] {
        var hidden = (gate ?? up).forward(x, rows: rows, compute: compute)
        activation(&hidden, compute: compute)
        if gate != nil { multiplyInPlace(&hidden, up.forward(x, rows: rows, compute: compute)) }
        return down.forward(hidden, rows: rows, compute: compute)
    }
}

extension TransformerBlock {
    /// The same block with every weight matrix converted, e.g. packed once at load for the products.
    public func convertingWeights<Other: LinearLayer>(_ convert: (Weights) -> Other) -> TransformerBlock<Other> {
        let projection: SelfAttention<Other>.Projection = switch attention.projection {
        case let .packed(p): .packed(convert(p))
        case let .separate(q, k, v): .separate(query: convert(q), key: convert(k), value: convert(v))
        }
        return TransformerBlock<Other>(
            norm1: norm1, attention: SelfAttention(projection: projection, output: convert(attention.output), heads: attention.heads),
            norm2: norm2, up: convert(up), activation: activation, down: convert(down), placement: placement, gate: gate.map(convert))
    }
}

/// A stack of encoder blocks.
public struct TransformerEncoder<Weights: LinearLayer>: Sendable {
    public let blocks: [TransformerBlock<Weights>]

    public init(blocks: [TransformerBlock<Weights>]) { self.blocks = blocks }

    /// Runs every block, throwing `ComputeCancelled` before a block once the context is cancelled.
    public func apply(_ x: inout [Float], sequenceLengths: [Int], causal: Bool, rotary: RotaryAngles? = nil, scratch: ScratchBuffer,
                      compute: ComputeContext) throws {
        try run(blocks[...], &x, sequenceLengths: sequenceLengths, causal: causal, rotary: rotary, scratch: scratch, compute: compute)
    }

    /// Row `position` of each sequence after every block, [sequences, width], for a caller that needs no
    /// other row (a pooled class token): the last block runs `TransformerBlock.applied`, which skips the
    /// other rows' queries, attention outputs and MLPs. `x` is left as the last block's input (updated in
    /// place, as `apply` does, to spare a copy). Non-causal; cancellation as in `apply`.
    public func states(at position: Int, of x: inout [Float], sequenceLengths: [Int], scratch: ScratchBuffer,
                       compute: ComputeContext) throws -> [Float] {
        guard let last = blocks.last else { preconditionFailure("an encoder without blocks has no last block to prune") }
        try run(blocks.dropLast(), &x, sequenceLengths: sequenceLengths, causal: false, scratch: scratch, compute: compute)
        try compute.checkCancellation()
        return last.applied(x, sequenceLengths: sequenceLengths, keepingPosition: position, compute: compute)
    }

    private func run(_ blocks: ArraySlice<TransformerBlock<Weights>>, _ x: inout [Float], sequenceLengths: [Int], causal: Bool,
                     rotary: RotaryAngles? = nil, scratch: ScratchBuffer, compute: ComputeContext) throws {
        for block in blocks {
            try compute.checkCancellation()
            block.apply(&x, sequenceLengths: sequenceLengths, causal: causal, rotary: rotary, scratch: scratch, compute: compute)
        }
    }
}

/// Rows `rows` of a [_, width] matrix, in that order.
func gatherRows(_ x: [Float], _ rows: [Int], width: Int) -> [Float] {
    var out = [Float]()
    out.reserveCapacity(rows.count * width)
    for r in rows { out += x[(r * width)..<((r + 1) * width)] }
    return out
}
