// The native-resolution hook of the ModifiedResNet tower: dense features at another input size than
// the model's. The trunk is convolutional, so it runs at any multiple of its stride (32); only the
// attention pool's positional embedding is tied to the training grid. It is resized bicubically to the
// trunk's grid, exactly as PyTorch's `F.interpolate(mode="bicubic", align_corners=False)` does (the
// resize open_clip uses for ViT position embeddings, and scripts/fixtures/make_native_dense_fixtures.py
// for this tower). VLMCLIP's CLIPModel checks the size and runs it (`encodeImageDense(_:count:size:)`).
import VLMTensor

extension AttentionPool2D {
    /// `perPosition` on a trunk grid of any size: each position plus the positional embedding
    /// resized to that grid, through the value and output projections. [batch, cells, outputDim].
    func perPosition(_ features: [Float], batch: Int, gridHeight: Int, gridWidth: Int, compute: ComputeContext) -> [Float] {
        let positions = gridHeight * gridWidth
        precondition(features.count == batch * positions * width, "attention pool expects \(positions) cells of width \(width)")
        let side = Int(Double(cells).squareRoot().rounded())
        let embedding = BicubicResize.channelsLast(Array(positionalEmbedding[width...]), channels: width,
                                                   from: (side, side), to: (gridHeight, gridWidth))
        var tokens = features
        for b in 0..<batch {
            for i in 0..<(positions * width) { tokens[b * positions * width + i] += embedding[i] }
        }
        return output(value(tokens, rows: batch * positions, compute: compute), rows: batch * positions, compute: compute)
    }
}

/// PyTorch's `F.interpolate(x, size, mode="bicubic", align_corners=False)` (antialias off) on a
/// channels-last grid: Keys' cubic convolution with a = −0.75 over the 4×4 neighbourhood, source
/// coordinate (dst + ½)·in/out − ½, neighbours beyond the border clamped to it.
public enum BicubicResize {
    static let a = -0.75

    /// `grid` is [from.height, from.width, channels] row-major; the result [to.height, to.width, channels].
    public static func channelsLast(_ grid: [Float], channels: Int, from: (height: Int, width: Int), to: (height: Int, width: Int)) -> [Float] {
        precondition(grid.count == from.height * from.width * channels && to.height > 0 && to.width > 0)
        if from == to { return grid }
        let rows = taps(from: from.height, to: to.height), columns = taps(from: from.width, to: to.width)
        var out = [Float](repeating: 0, count: to.height * to.width * channels)
        var sum = [Double](repeating: 0, count: channels)
        for y in 0..<to.height {
            for x in 0..<to.width {
                for c in 0..<channels { sum[c] = 0 }
                for (sourceRow, wy) in rows[y] {
                    for (sourceColumn, wx) in columns[x] {
                        let base = (sourceRow * from.width + sourceColumn) * channels
                        let w = wy * wx
                        for c in 0..<channels { sum[c] += w * Double(grid[base + c]) }
                    }
                }
                let base = (y * to.width + x) * channels
                for c in 0..<channels { out[base + c] = Float(sum[c]) }
            }
        }
        return out
    }

    /// For each output index along one axis: its four source indices (clamped) and their weights.
    static func taps(from input: Int, to output: Int) -> [[(index: Int, weight: Double)]] {
        let scale = Double(input) / Double(output)
        return (0..<output).map { dst in
            let source = (Double(dst) + 0.5) * scale - 0.5
            let first = Int(source.rounded(.down))
            let t = source - Double(first)
            let weights = [far(t + 1), near(t), near(1 - t), far(2 - t)]
            return (0..<4).map { (min(max(first - 1 + $0, 0), input - 1), weights[$0]) }
        }
    }

    /// The kernel for |x| ≤ 1 and for 1 < |x| < 2.
    static func near(_ x: Double) -> Double { ((a + 2) * x - (a + 3)) * x * x + 1 }
    static func far(_ x: Double) -> Double { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
}
