import Testing
import VLMTensor

/// The packed-weight product against a scalar triple loop in Double, on shapes with ragged row tiles
/// (m not a multiple of 6), ragged column panels (n not a multiple of 16), several k-slices (k > 320),
/// and both ways of splitting across threads (by rows, by column panels).
@Suite struct PackedGEMMTests {
    @Test(arguments: [(50, 700, 70, false, false), (50, 700, 70, true, true), (13, 700, 300, true, false), (7, 5, 16, false, true),
                      (1, 1, 1, true, true)])
    func productMatchesLoops(m: Int, k: Int, n: Int, accumulate: Bool, relu: Bool) {
        var random = SeededRandom(UInt64(m * 1000 + n))
        let a = random.floats(m * k)
        let b = random.floats(k * n)
        let bias = random.floats(n)
        let initial = random.floats(m * n)
        var c = initial
        let packed = PackedMatrix(b, rows: k, columns: n)
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                packed.multiply(a.baseAddress!, lda: k, m: m, into: c.baseAddress!, ldc: n, bias: bias, accumulate: accumulate, relu: relu,
                                compute: ComputeContext(threads: 2))
            }
        }
        var expected = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = Double(bias[j]) + (accumulate ? Double(initial[i * n + j]) : 0)
                for p in 0..<k { sum += Double(a[i * k + p]) * Double(b[p * n + j]) }
                expected[i * n + j] = Float(relu ? max(sum, 0) : sum)
            }
        }
        #expect(maxAbsDifference(c, expected) < 1e-4)
    }

    /// Row and output strides wider than the matrices: only the addressed columns are read and written.
    @Test func stridedOperandsLeaveTheRestAlone() {
        var random = SeededRandom(99)
        let (m, k, n, lda, ldc) = (9, 20, 18, 25, 21)
        let a = random.floats(m * lda)
        let b = random.floats(k * n)
        var c = [Float](repeating: 7, count: m * ldc)
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                PackedMatrix(b, rows: k, columns: n).multiply(a.baseAddress!, lda: lda, m: m, into: c.baseAddress!, ldc: ldc,
                                                              bias: [Float](repeating: 0, count: n), accumulate: false, relu: false,
                                                              compute: ComputeContext(threads: 2))
            }
        }
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k { sum += a[i * lda + p] * b[p * n + j] }
                #expect(abs(c[i * ldc + j] - sum) < 1e-4)
            }
            for j in n..<ldc { #expect(c[i * ldc + j] == 7) }
        }
    }
}
