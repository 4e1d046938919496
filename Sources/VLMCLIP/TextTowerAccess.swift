import VLMTensor
import VLMVision

// Read-only access to the text tower's weights for other modules of this package (prompt learning
// differentiates through the text transformer and needs its parameters, not just `encodeText`).
// `package` visibility keeps these out of the public API.

/// One pre-norm residual attention block: x += attn(ln_1(x)); x += c_proj(act(c_fc(ln_2(x)))).
package struct TextBlockWeights: Sendable {
    package let norm1: LayerNorm
    package let attention: MultiHeadAttention
    package let norm2: LayerNorm
    package let fullyConnected: Linear
    package let activation: Activation
    package let projection: Linear
}

/// The text tower's parameters (open_clip names in comments).
package struct TextTowerWeights: Sendable {
    package let tokenEmbedding: [Float]  // token_embedding.weight [vocab, width]
    package let positionalEmbedding: [Float]  // positional_embedding [context, width]
    package let blocks: [TextBlockWeights]  // transformer.resblocks
    package let finalNorm: LayerNorm  // ln_final
    package let projection: Linear  // text_projection, as y = x · Wᵀ with W [embedDim, width]
    package let contextLength: Int
    package let vocabSize: Int
    package let width: Int
}

extension CLIPModel {
    /// The text tower's weights (arrays are shared copy-on-write, nothing is copied).
    package var textTowerWeights: TextTowerWeights {
        let tower = textTower
        return TextTowerWeights(
            tokenEmbedding: tower.tokenEmbedding, positionalEmbedding: tower.positionalEmbedding,
            blocks: tower.transformer.blocks.map { block in
                guard case let .packed(inProjection) = block.attention.projection else {
                    preconditionFailure("open_clip text blocks are loaded with a packed in_proj")
                }
                return TextBlockWeights(
                    norm1: block.norm1,
                    attention: MultiHeadAttention(inProjection: inProjection, outProjection: block.attention.output,
                                                  heads: block.attention.heads),
                    norm2: block.norm2, fullyConnected: block.up, activation: block.activation, projection: block.down)
            },
            finalNorm: tower.finalNorm, projection: tower.projection,
            contextLength: tower.contextLength, vocabSize: tower.vocabSize, width: tower.width)
    }
}
