// A step's attention to the image, gathered while the step is generated: each token fed back through
// the language model reports its softmax weights in the readout's layers, and only their sum over the
// image-token positions is kept (a few hundred numbers per token, not the whole context's rows).
import VLMLanguage

struct ImageAttention {
    let readout: AttentionReadout
    let heads: Int
    /// Per image position (the readout's ranges in order): weight summed over tokens, heads and layers.
    private(set) var mass: [Double]
    /// Token x head x layer rows summed so far.
    private(set) var rows = 0
    /// Tokens whose attention was added.
    private(set) var tokens = 0

    init(readout: AttentionReadout, heads: Int) {
        self.readout = readout
        self.heads = heads
        mass = [Double](repeating: 0, count: readout.positions.reduce(0) { $0 + $1.count })
    }

    /// Adds one token's weights: per layer, [head][position 0..<span].
    mutating func add(_ attention: [Int: [Float]]) {
        for (layer, weights) in attention where readout.layers.contains(layer) {
            let span = weights.count / heads
            weights.withUnsafeBufferPointer { w in
                for head in 0..<heads {
                    let row = head * span
                    var i = 0
                    for range in readout.positions {
                        for p in range { mass[i] += Double(w[row + p]); i += 1 }
                    }
                }
            }
            rows += heads
        }
        tokens += 1
    }

    /// The mean weight per image position over every row added.
    var mean: [Double] { rows > 0 ? mass.map { $0 / Double(rows) } : mass }
}
