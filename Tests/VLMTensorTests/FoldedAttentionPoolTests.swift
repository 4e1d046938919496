import Foundation
import Testing
import VLMTensor

/// The folded attention pool against the attention it replaces, written out in Double: every token's
/// key and value projected (biases included), then one query's softmax attention per head.
@Suite struct FoldedAttentionPoolTests {
    static func projected(_ x: ArraySlice<Float>, _ layer: Linear) -> [Double] {
        let x = Array(x)
        return (0..<layer.outFeatures).map { o in
            (0..<layer.inFeatures).reduce(Double(layer.bias?[o] ?? 0)) { $0 + Double(layer.weight[o * layer.inFeatures + $1]) * Double(x[$1]) }
        }
    }

    static func attention(query: [Float], tokens: ArraySlice<Float>, key: Linear, value: Linear, heads: Int) -> [Float] {
        let width = query.count, headDim = width / heads
        let sequence = tokens.count / width
        let rows = (0..<sequence).map { tokens[(tokens.startIndex + $0 * width)..<(tokens.startIndex + ($0 + 1) * width)] }
        let (keys, values) = (rows.map { projected($0, key) }, rows.map { projected($0, value) })
        var out = [Float](repeating: 0, count: width)
        for h in 0..<heads {
            let dims = (h * headDim)..<((h + 1) * headDim)
            let scores = keys.map { k in dims.reduce(0.0) { $0 + Double(query[$1]) * k[$1] } / Double(headDim).squareRoot() }
            let weights = scores.map { exp($0 - scores.max()!) }
            let total = weights.reduce(0, +)
            for d in dims { out[d] = Float(zip(weights, values).reduce(0.0) { $0 + $1.0 / total * $1.1[d] }) }
        }
        return out
    }

    @Test func foldedProjectionsGiveTheAttentionOfProjectedKeysAndValues() {
        var random = SeededRandom(16)
        let (batch, sequence, heads, width) = (3, 7, 4, 12)
        func layer() -> Linear {
            Linear(weight: Tensor(shape: [width, width], storage: random.floats(width * width)),
                   bias: Tensor(shape: [width], storage: random.floats(width)))
        }
        let (key, value) = (layer(), layer())
        let queries = random.floats(batch * width).map { 3 * $0 }  // sharper softmax than unit scale
        let tokens = random.floats(batch * sequence * width)
        let pool = FoldedAttentionPool(key: key, value: value, heads: heads)
        let out = pool(queries: queries, tokens: tokens, batch: batch, sequence: sequence, scratch: ScratchBuffer())
        var expected: [Float] = []
        for b in 0..<batch {
            let query = Array(queries[(b * width)..<((b + 1) * width)])
            let image = tokens[(b * sequence * width)..<((b + 1) * sequence * width)]
            expected += Self.attention(query: query, tokens: image, key: key, value: value, heads: heads)
        }
        #expect(maxAbsDifference(out, expected) < 1e-5)
    }
}
