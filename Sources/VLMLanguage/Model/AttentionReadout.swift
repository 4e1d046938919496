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
        let heads = hp.headCount, span = cache.count + tokens.count
        var sums = [Double](repeating: 0, count: positions.count)
        for weights in output.attention.values {
            for row in 0..<(tokens.count * heads) {
                for (i, p) in positions.enumerated() { sums[i] += Double(weights[row * span + p]) }
            }
        }
        let rows = Double(layers.count * tokens.count * heads)
        return sums.map { Float($0 / rows) }
    }
}
