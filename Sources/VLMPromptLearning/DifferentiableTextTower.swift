import VLMCLIP
import VLMTensor

/// CLIP's text tower as a function of its input *embeddings* (not token ids), with a backward pass
/// to those embeddings: the engine of soft-prompt learning.
///
/// Forward (open_clip's encode_text after the token lookup):
///     x = embeddings + positional;  x = blocks(x) (causal);  p = x[eot];  t = ln_final(p) · text_projection
///
/// Rows are *packed* (see `PackedPrompts`): each row carries its own position, and attention follows
/// `AttentionSegments`, so a prefix shared by every prompt is computed once, and nothing after a
/// prompt's end-of-text token is computed at all (with the causal mask, position i never sees later
/// positions, so trailing padding cannot change the pooled features: exact, not an approximation).
struct DifferentiableTextTower: Sendable {
    let weights: TextTowerWeights

    var width: Int { weights.width }
    var embedDim: Int { weights.projection.outFeatures }

    /// Everything the backward pass needs from one forward pass.
    struct Tape {
        struct Block {
            var norm1: LayerNormTape
            var attention: AttentionTape
            var norm2: LayerNormTape
            var hiddenPreActivation: [Float]
        }
        var rows: Int
        var segments: AttentionSegments
        var pooledRows: [Int]
        var blocks: [Block]
        var finalNorm: LayerNormTape
    }

    /// Unnormalised text features [pooledRows.count, embedDim] for `embeddings` ([rows, width],
    /// without positional embeddings; row r sits at `positions[r]`), pooled at `pooledRows`.
    func forward(embeddings: [Float], positions: [Int], segments: AttentionSegments, pooledRows: [Int],
                 compute: ComputeContext) -> (features: [Float], tape: Tape) {
        let rows = positions.count
        precondition(embeddings.count == rows * width && positions.allSatisfy { $0 < weights.contextLength })
        var x = embeddings
        for (r, p) in positions.enumerated() {
            for d in 0..<width { x[r * width + d] += weights.positionalEmbedding[p * width + d] }
        }
        var blockTapes: [Tape.Block] = []
        for block in weights.blocks {
            let (normed1, norm1Tape) = block.norm1.forward(x, rows: rows)
            let (attended, attentionTape) = block.attention.forward(normed1, rows: rows, segments: segments)
            addInPlace(&x, attended)
            let (normed2, norm2Tape) = block.norm2.forward(x, rows: rows)
            let hidden = block.fullyConnected(normed2, rows: rows)
            var activated = hidden
            block.activation(&activated, compute: compute)
            addInPlace(&x, block.projection(activated, rows: rows))
            blockTapes.append(Tape.Block(norm1: norm1Tape, attention: attentionTape, norm2: norm2Tape, hiddenPreActivation: hidden))
        }
        let batch = pooledRows.count
        var pooled = [Float](repeating: 0, count: batch * width)
        for (b, row) in pooledRows.enumerated() {
            for d in 0..<width { pooled[b * width + d] = x[row * width + d] }
        }
        let (normed, finalTape) = weights.finalNorm.forward(pooled, rows: batch)
        let features = weights.projection(normed, rows: batch)
        return (features, Tape(rows: rows, segments: segments, pooledRows: pooledRows, blocks: blockTapes, finalNorm: finalTape))
    }

    /// dL/d(embeddings) [rows, width] from dL/d(features) [pooledRows.count, embedDim].
    /// (The positional embedding is added, so its gradient passes through unchanged.)
    func backward(featureGradient: [Float], tape: Tape) -> [Float] {
        let (rows, batch) = (tape.rows, tape.pooledRows.count)
        let pooledGradient = weights.finalNorm.backward(
            weights.projection.inputGradient(featureGradient, rows: batch), tape: tape.finalNorm, rows: batch)
        var dx = [Float](repeating: 0, count: rows * width)
        for (b, row) in tape.pooledRows.enumerated() {
            for d in 0..<width { dx[row * width + d] += pooledGradient[b * width + d] }
        }
        for (block, blockTape) in zip(weights.blocks, tape.blocks).reversed() {
            // x2 = x1 + c_proj(act(c_fc(ln_2(x1))))
            var hiddenGradient = block.projection.inputGradient(dx, rows: rows)
            block.activation.multiplyDerivative(&hiddenGradient, preActivation: blockTape.hiddenPreActivation)
            let norm2Gradient = block.fullyConnected.inputGradient(hiddenGradient, rows: rows)
            addInPlace(&dx, block.norm2.backward(norm2Gradient, tape: blockTape.norm2, rows: rows))
            // x1 = x0 + attn(ln_1(x0))
            let norm1Gradient = block.attention.backward(dx, tape: blockTape.attention, rows: rows, segments: tape.segments)
            addInPlace(&dx, block.norm1.backward(norm1Gradient, tape: blockTape.norm1, rows: rows))
        }
        return dx
    }
}
