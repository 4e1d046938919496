// A step's attention to the image, gathered while the step is generated: each token fed back through
// the language model reports its softmax weights in the readout's layers, and only their sum over the
// image-token positions is kept (a few hundred numbers per token, not the whole context's rows), in
// VLMLanguage's `AttentionMass`, the accumulator `Transformer.meanAttention` reduces with too.
import VLMLanguage

struct ImageAttention {
    let readout: AttentionReadout
    let heads: Int
    /// The readout's layers in order, so every token's rows are summed in the same order.
    private let layers: [Int]
    /// Per image position (the readout's ranges in order): weight summed over tokens, heads and layers.
    private var mass: AttentionMass
    /// Tokens whose attention was added.
    private(set) var tokens = 0

    init(readout: AttentionReadout, heads: Int) {
        self.readout = readout
        self.heads = heads
        layers = readout.layers.sorted()
        mass = AttentionMass(positions: readout.positions)
    }

    /// Adds one token's weights: per layer, [head][position 0..<span].
    mutating func add(_ attention: [Int: [Float]]) {
        for layer in layers {
            if let weights = attention[layer] { mass.add(weights, rows: heads, span: weights.count / heads) }
        }
        tokens += 1
    }

    /// The mean weight per image position over every row added.
    var mean: [Double] { mass.mean }
}
