import Testing
import VLMTensor

/// The bf16 Winograd path (AVX-512 transforms, V rounded to bf16 as it is transformed) against
/// - F(4,3) written out in Double from Lavin & Gray's matrices, with V = Bᵀ d B and U = G g Gᵀ rounded
///   to bf16 where the kernels round them: equal up to float32 sums (and a rare bf16 rounding tie
///   broken the other way by V's float32 transform);
/// - the direct float32 loops, to bf16 Winograd's accuracy: V and U rounded to 8 significant bits and
///   the output transform's factors up to 8 in each direction give about 2 % of the output's RMS
///   (measured 2.1-2.4 %); a wrong lane mask, edge tile or epilogue is off by the output's own size.
/// Shapes: ragged edge tiles, a half vector of channels (8, 24: the masked lanes), both paddings, more
/// tiles than one block, and the residual + ReLU epilogue.
@Suite struct BF16WinogradTests {
    @Test(.enabled(if: BF16.isSupported, "needs AVX-512 BF16"),
          arguments: [(2, 13, 11, 8, 16, 1, false), (4, 52, 50, 16, 16, 1, true), (1, 7, 7, 24, 8, 1, true), (2, 10, 9, 32, 24, 0, false)])
    func bf16WinogradMatchesDirectLoops(batch: Int, height: Int, width: Int, inChannels: Int, outChannels: Int, padding: Int,
                                        residual: Bool) {
        let run = WinogradCase(seed: UInt64(1900 + height * 10 + padding), precision: .bf16, batch: batch, height: height, width: width,
                               inChannels: inChannels, outChannels: outChannels, padding: padding, residual: residual)
        let (ours, expected, bias) = (run.ours, run.expected, run.bias)
        #expect(relativeRMS(ours, expected.map(Double.init)) < 4e-2)
        let inDouble = Self.roundedWinograd(run.x, batch: batch, inChannels: inChannels, height: height, width: width, weight: run.weight,
                                             outChannels: outChannels, padding: padding)
        let withBias = zip(inDouble, run.shortcut).enumerated().map { $1.0 + Double(bias[$0 % outChannels]) + Double($1.1) }
        let reference = residual ? withBias.map { max($0, 0) } : withBias
        #expect(relativeRMS(ours, reference) < 1e-3)
    }

    /// √(mean (ours − reference)²) / √(mean reference²).
    func relativeRMS(_ ours: [Float], _ reference: [Double]) -> Double {
        let error = zip(ours, reference).map { (Double($0) - $1) * (Double($0) - $1) }.reduce(0, +)
        return (error / reference.map { $0 * $0 }.reduce(0, +)).squareRoot()
    }

    static let inputTransposed: [[Double]] = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                                              [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    static let filterMatrix: [[Double]] = [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                                           [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
    static let outputTransposed: [[Double]] = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]

    /// L · X · Rᵀ for small dense matrices.
    static func sandwich(_ l: [[Double]], _ x: [[Double]], _ r: [[Double]]) -> [[Double]] {
        l.map { lRow in
            r.map { rRow in
                var sum = 0.0
                for i in 0..<x.count { for j in 0..<x[0].count { sum += lRow[i] * x[i][j] * rRow[j] } }
                return sum
            }
        }
    }

    static func bf16(_ x: Double) -> Double { Double(BF16.widened(BF16.rounded(Float(x)))) }

    /// The convolution without bias as F(4,3) in Double from NCHW input and [out, in, 3, 3] weights,
    /// V and U rounded to bf16; channels-last output [batch, oh, ow, out].
    static func roundedWinograd(_ x: [Float], batch: Int, inChannels: Int, height: Int, width: Int, weight: [Float],
                                outChannels: Int, padding: Int) -> [Double] {
        let (oh, ow) = (height + 2 * padding - 2, width + 2 * padding - 2)
        let u = (0..<(outChannels * inChannels)).map { index in
            let g = (0..<3).map { i in (0..<3).map { j in Double(weight[index * 9 + i * 3 + j]) } }
            return sandwich(filterMatrix, g, filterMatrix).map { $0.map(bf16) }
        }
        var out = [Double](repeating: 0, count: batch * oh * ow * outChannels)
        for n in 0..<batch {
            for ty in Swift.stride(from: 0, to: oh, by: 4) {
                for tx in Swift.stride(from: 0, to: ow, by: 4) {
                    let v = (0..<inChannels).map { c in
                        let d = (0..<6).map { i in
                            (0..<6).map { j -> Double in
                                let (y, xx) = (ty - padding + i, tx - padding + j)
                                guard y >= 0, y < height, xx >= 0, xx < width else { return 0 }
                                return Double(x[((n * inChannels + c) * height + y) * width + xx])
                            }
                        }
                        return sandwich(inputTransposed, d, inputTransposed).map { $0.map(bf16) }
                    }
                    for o in 0..<outChannels {
                        var m = [[Double]](repeating: [Double](repeating: 0, count: 6), count: 6)
                        for c in 0..<inChannels {
                            for i in 0..<6 { for j in 0..<6 { m[i][j] += u[o * inChannels + c][i][j] * v[c][i][j] } }
                        }
                        let y = sandwich(outputTransposed, m, outputTransposed)
                        for i in 0..<min(4, oh - ty) {
                            for j in 0..<min(4, ow - tx) { out[((n * oh + ty + i) * ow + tx + j) * outChannels + o] = y[i][j] }
                        }
                    }
                }
            }
        }
        return out
    }
}
