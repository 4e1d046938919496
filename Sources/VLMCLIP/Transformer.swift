import VLMTensor
import VLMVision

// open_clip's Transformer (a stack of ResidualAttentionBlocks, pre-norm) read from a checkpoint into
// VLMVision's encoder: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)), mlp = c_proj(act(c_fc(·))).
extension CheckpointReader {
    func transformer(prefix: String, width: Int, heads: Int, layers: Int, mlpRatio: Double, activation: Activation) throws
        -> TransformerEncoder<Linear>
    {
        let mlpWidth = Int(Double(width) * mlpRatio)
        return TransformerEncoder(blocks: try (0..<layers).map { i in
            let block = "\(prefix)resblocks.\(i)."
            let inProjection = Linear(weight: try tensor(block + "attn.in_proj_weight", [3 * width, width]),
                                      bias: try tensor(block + "attn.in_proj_bias", [3 * width]))
            return TransformerBlock(
                norm1: try layerNorm(block + "ln_1.", width: width),
                attention: SelfAttention(projection: .packed(inProjection),
                                         output: try linear(block + "attn.out_proj.", in: width, out: width), heads: heads),
                norm2: try layerNorm(block + "ln_2.", width: width),
                up: try linear(block + "mlp.c_fc.", in: width, out: mlpWidth), activation: activation,
                down: try linear(block + "mlp.c_proj.", in: mlpWidth, out: width), placement: .pre)
        })
    }
}
