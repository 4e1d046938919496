import Testing
import VLMTensor

/// bf16 rounding against IEEE round-to-nearest-even worked by hand, and the bf16 product against a
/// Double triple loop over the bf16-rounded operands: the kernel may differ from it only by the order
/// of its float32 sums.
@Suite struct BF16GEMMTests {
    @Test func roundsToNearestEven() {
        // bf16 keeps 7 fraction bits: near 1 its step is 2^-7, so 1 + 2^-8 is a tie.
        #expect(BF16.rounded(1) == 0x3F80)
        #expect(BF16.rounded(-2.5) == 0xC020)
        #expect(BF16.rounded(1 + 0x1p-8) == 0x3F80)  // tie, down to the even 1.0
        #expect(BF16.rounded(1 + 3 * 0x1p-8) == 0x3F82)  // tie, up to the even 1 + 2^-6
        #expect(BF16.rounded(1 + 0x1p-8 + 0x1p-20) == 0x3F81)  // above the tie
        #expect(BF16.rounded(.greatestFiniteMagnitude) == 0x7F80)  // overflows to +infinity
        #expect(BF16.widened(BF16.rounded(.nan)).isNaN)
        #expect(BF16.widened(0x3FC0) == 1.5)
    }

    /// Shapes with ragged row tiles (m not a multiple of 12), ragged panels (n not a multiple of 32), an
    /// odd inner dimension and several k-slices (k > 256), both thread splits, and the fused epilogue.
    @Test(.enabled(if: BF16.isSupported, "needs AVX-512 BF16"),
          arguments: [(1, 27, 64, false, false), (13, 301, 40, true, true), (50, 768, 96, false, false), (100, 600, 33, true, false),
                      (7, 5, 16, false, true)])
    func productMatchesRoundedOperandsInDouble(m: Int, k: Int, n: Int, accumulate: Bool, relu: Bool) {
        var random = SeededRandom(UInt64(m * 1000 + k))
        let a = random.floats(m * k)
        let b = random.floats(k * n)
        let bias = random.floats(n)
        let initial = random.floats(m * n)
        var c = initial
        BF16Matrix(b, rows: k, columns: n).multiply(a, lda: k, m: m, into: &c, ldc: n, bias: bias, accumulate: accumulate, relu: relu)
        let rounded = { (x: Float) in Double(BF16.widened(BF16.rounded(x))) }
        for i in 0..<m {
            for j in 0..<n {
                var sum = Double(bias[j]) + (accumulate ? Double(initial[i * n + j]) : 0)
                var magnitude = abs(sum)
                for p in 0..<k {
                    let term = rounded(a[i * k + p]) * rounded(b[p * n + j])
                    sum += term
                    magnitude += abs(term)
                }
                let expected = relu ? max(sum, 0) : sum
                // float32 sums in another order: far below bf16's own rounding (2^-9 relative per operand).
                #expect(abs(Double(c[i * n + j]) - expected) <= 1e-5 * magnitude, "c[\(i)][\(j)]")
            }
        }
    }

    /// `BF16Linear` is `Linear` with its weights and inputs rounded to bf16 (PyTorch's [out, in] layout).
    @Test(.enabled(if: BF16.isSupported, "needs AVX-512 BF16"))
    func linearRoundsWeightsAndInputs() {
        var random = SeededRandom(7)
        let (rows, inFeatures, outFeatures) = (5, 70, 45)
        let weight = random.floats(outFeatures * inFeatures), bias = random.floats(outFeatures), x = random.floats(rows * inFeatures)
        let layer = BF16Linear(Linear(weight: Tensor(shape: [outFeatures, inFeatures], storage: weight),
                                      bias: Tensor(shape: [outFeatures], storage: bias)))
        let y = layer.forward(x, rows: rows, compute: ComputeContext(threads: 2))
        let rounded = { (x: Float) in Double(BF16.widened(BF16.rounded(x))) }
        for r in 0..<rows {
            for o in 0..<outFeatures {
                var sum = Double(bias[o])
                for i in 0..<inFeatures { sum += rounded(x[r * inFeatures + i]) * rounded(weight[o * inFeatures + i]) }
                #expect(abs(Double(y[r * outFeatures + o]) - sum) <= 1e-5 * Double(inFeatures), "y[\(r)][\(o)]")
            }
        }
    }
}

extension BF16Matrix {
    /// Array form of `multiply` for the tests.
    func multiply(_ a: [Float], lda: Int, m: Int, into c: inout [Float], ldc: Int, bias: [Float], accumulate: Bool, relu: Bool) {
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                multiply(a.baseAddress!, lda: lda, m: m, into: c.baseAddress!, ldc: ldc, bias: bias, accumulate: accumulate, relu: relu,
                         compute: ComputeContext(threads: 2))
            }
        }
    }
}
