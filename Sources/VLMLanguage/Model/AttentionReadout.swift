// Reading the decoder's attention: how much a run of tokens attends to a range of earlier positions
// (e.g. image tokens), for attribution.

extension Transformer {
    /// Runs `tokens` after the positions in `cache` (on a copy: the caller's cache is unchanged) and
    /// returns, for each position of `positions`, the softmax weight the new tokens give it, averaged
    /// over the tokens, all heads, and `layers`. `positions` must lie inside the cache's filled part.
    public func meanAttention(of tokens: [Int32], after cache: KVCache, layers: Set<Int>,
                              to positions: Range<Int>) throws -> [Float] {
        let hp = hyperparameters
        guard !tokens.isEmpty, !layers.isEmpty else { return [Float](repeating: 0, count: positions.count) }
        guard layers.allSatisfy({ (0..<hp.blockCount).contains($0) }) else {
            throw LanguageModelError.invalidHyperparameters("attention layers \(layers.sorted()) of a \(hp.blockCount)-layer model")
        }
        guard positions.lowerBound >= 0, positions.upperBound <= cache.count else {
            throw LanguageModelError.invalidHyperparameters("positions \(positions) outside the \(cache.count) cached ones")
        }
        var fork = cache
        let output = try forward(tokens, cache: &fork, attentionLayers: layers)
        var mass = AttentionMass(positions: [positions])
        for layer in layers.sorted() {
            if let weights = output.attention[layer] { mass.add(weights, rows: tokens.count * hp.headCount, span: cache.count + tokens.count) }
        }
        return mass.mean.map { Float($0) }
    }
}

/// Attention weights to chosen context positions, summed over rows (token x head x layer) as they come:
/// a few hundred sums instead of whole rows. One accumulator for a batched pass (`meanAttention`) and
/// for tokens recorded one at a time while generating, so both reduce in the same way.
public struct AttentionMass: Sendable {
    /// Context positions, in order.
    public let positions: [Range<Int>]
    /// Per position of `positions` in order: the weight summed over every row added.
    public private(set) var sums: [Double]
    /// Rows added.
    public private(set) var rows = 0

    public init(positions: [Range<Int>]) {
        self.positions = positions
        sums = [Double](repeating: 0, count: positions.reduce(0) { $0 + $1.count })
    }

    /// Adds `count` rows of `weights`, each `span` positions wide (a layer's `ForwardOutput.attention`).
    public mutating func add(_ weights: [Float], rows count: Int, span: Int) {
        precondition(weights.count >= count * span && positions.allSatisfy { $0.upperBound <= span }, "attention rows too short")
        weights.withUnsafeBufferPointer { w in
            sums.withUnsafeMutableBufferPointer { s in
                for row in 0..<count {
                    var i = 0
                    for range in positions {
                        for p in range { s[i] += Double(w[row * span + p]); i += 1 }
                    }
                }
            }
        }
        rows += count
    }

    /// The mean weight per position over every row added.
    public var mean: [Double] { rows > 0 ? sums.map { $0 / Double(rows) } : sums }
}
