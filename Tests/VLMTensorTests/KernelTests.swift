import Foundation
import Testing
import VLMTensor

/// The tensor-core kernels against straightforward scalar implementations written out here.
@Suite struct KernelTests {
    /// Direct 7-loop convolution in Double.
    static func naiveConvolution(_ x: [Float], batch: Int, inChannels: Int, height: Int, width: Int,
                                 weight: [Float], bias: [Float]?, outChannels: Int, kernel: Int, stride: Int, padding: Int) -> [Float] {
        let oh = (height + 2 * padding - kernel) / stride + 1
        let ow = (width + 2 * padding - kernel) / stride + 1
        var out = [Float](repeating: 0, count: batch * outChannels * oh * ow)
        for n in 0..<batch { for o in 0..<outChannels { for y in 0..<oh { for xo in 0..<ow {
            var sum = Double(bias?[o] ?? 0)
            for c in 0..<inChannels { for i in 0..<kernel { for j in 0..<kernel {
                let sy = y * stride - padding + i, sx = xo * stride - padding + j
                guard sy >= 0, sy < height, sx >= 0, sx < width else { continue }
                sum += Double(x[((n * inChannels + c) * height + sy) * width + sx]) * Double(weight[((o * inChannels + c) * kernel + i) * kernel + j])
            } } }
            out[((n * outChannels + o) * oh + y) * ow + xo] = Float(sum)
        } } } }
        return out
    }

    @Test(arguments: [(3, 1, 1), (3, 2, 1), (1, 1, 0), (4, 4, 0), (3, 1, 0), (5, 2, 2), (3, 1, 2)])
    func convolutionMatchesDirectLoops(kernel: Int, stride: Int, padding: Int) {
        var random = SeededRandom(UInt64(kernel * 100 + stride * 10 + padding))
        let (batch, inChannels, outChannels, height, width) = (2, 3, 5, 9, 8)
        let x = random.floats(batch * inChannels * height * width)
        let weight = random.floats(outChannels * inChannels * kernel * kernel)
        let bias = random.floats(outChannels)
        let conv = Conv2D(weight: Tensor(shape: [outChannels, inChannels, kernel, kernel], storage: weight), bias: bias, stride: stride, padding: padding)
        let ours = conv(x, batch: batch, height: height, width: width, scratch: ScratchBuffer(), compute: ComputeContext())
        let expected = Self.naiveConvolution(x, batch: batch, inChannels: inChannels, height: height, width: width, weight: weight, bias: bias,
                                             outChannels: outChannels, kernel: kernel, stride: stride, padding: padding)
        #expect(ours.height == (height + 2 * padding - kernel) / stride + 1)
        #expect(maxAbsDifference(ours.values, expected) < 1e-5)
    }

    /// The fused epilogue: output += conv(x) + bias, then ReLU — for the Winograd (3×3) and pointwise paths.
    @Test(arguments: [(3, 1), (1, 0)]) func accumulateAndReluMatchSeparateSteps(kernel: Int, padding: Int) {
        var random = SeededRandom(UInt64(40 + kernel))
        let (inChannels, outChannels, size) = (6, 5, 7)
        let x = random.floats(2 * inChannels * size * size)
        let weight = random.floats(outChannels * inChannels * kernel * kernel)
        let bias = random.floats(outChannels)
        let conv = Conv2D(weight: Tensor(shape: [outChannels, inChannels, kernel, kernel], storage: weight), bias: bias, padding: padding)
        let residual = random.floats(2 * outChannels * size * size)
        var fused = residual
        conv.accumulate(x, batch: 2, height: size, width: size, into: &fused, scratch: ScratchBuffer(), compute: ComputeContext(), relu: true)
        let plain = Self.naiveConvolution(x, batch: 2, inChannels: inChannels, height: size, width: size, weight: weight, bias: bias,
                                          outChannels: outChannels, kernel: kernel, stride: 1, padding: padding)
        let expected = zip(plain, residual).map { max($0 + $1, 0) }
        #expect(maxAbsDifference(fused, expected) < 1e-5)
    }

    @Test func batchNormFoldingEqualsConvolutionThenNorm() {
        var random = SeededRandom(7)
        let (inChannels, outChannels, size) = (4, 6, 5)
        let x = random.floats(inChannels * size * size)
        let weight = Tensor(shape: [outChannels, inChannels, 3, 3], storage: random.floats(outChannels * inChannels * 9))
        let norm = BatchNorm(weight: random.floats(outChannels).map { $0 + 1.5 }, bias: random.floats(outChannels),
                             runningMean: random.floats(outChannels), runningVar: random.floats(outChannels).map { $0 + 1.2 })
        let folded = Conv2D.foldingBatchNorm(weight, norm, padding: 1)(x, batch: 1, height: size, width: size, scratch: ScratchBuffer(),
                                                                                     compute: ComputeContext())
        var expected = Conv2D(weight: weight, padding: 1)(x, batch: 1, height: size, width: size, scratch: ScratchBuffer(),
                                                        compute: ComputeContext()).values
        for o in 0..<outChannels {
            for i in 0..<(size * size) {
                let v = expected[o * size * size + i]
                expected[o * size * size + i] = (v - norm.runningMean[o]) / (norm.runningVar[o] + norm.eps).squareRoot() * norm.weight[o] + norm.bias[o]
            }
        }
        #expect(maxAbsDifference(folded.values, expected) < 1e-5)
    }

    @Test func linearMatchesLoopsAndProjectionIsTransposed() {
        var random = SeededRandom(3)
        let (rows, inFeatures, outFeatures) = (4, 7, 5)
        let x = random.floats(rows * inFeatures)
        let weight = random.floats(outFeatures * inFeatures)
        let bias = random.floats(outFeatures)
        let layer = Linear(weight: Tensor(shape: [outFeatures, inFeatures], storage: weight), bias: Tensor(shape: [outFeatures], storage: bias))
        var expected = [Float](repeating: 0, count: rows * outFeatures)
        for r in 0..<rows { for o in 0..<outFeatures {
            var sum = bias[o]
            for i in 0..<inFeatures { sum += x[r * inFeatures + i] * weight[o * inFeatures + i] }
            expected[r * outFeatures + o] = sum
        } }
        #expect(maxAbsDifference(layer(x, rows: rows), expected) < 1e-5)

        // x @ P with P = Wᵀ stored [in, out] is the same product without bias.
        var projection = [Float](repeating: 0, count: inFeatures * outFeatures)
        for o in 0..<outFeatures { for i in 0..<inFeatures { projection[i * outFeatures + o] = weight[o * inFeatures + i] } }
        let projected = Linear(projection: Tensor(shape: [inFeatures, outFeatures], storage: projection))(x, rows: rows)
        let withoutBias = (0..<expected.count).map { expected[$0] - bias[$0 % outFeatures] }
        #expect(maxAbsDifference(projected, withoutBias) < 1e-5)
    }

    @Test func layerNormMatchesDoublePrecision() {
        var random = SeededRandom(11)
        let (rows, width) = (3, 16)
        var x = random.floats(rows * width).map { $0 * 10 + 100 }  // large mean: the two-pass variance matters
        let gamma = random.floats(width), beta = random.floats(width)
        var expected = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            let row = x[r * width..<(r + 1) * width].map(Double.init)
            let mean = row.reduce(0, +) / Double(width)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width)
            for i in 0..<width { expected[r * width + i] = Float((row[i] - mean) / (variance + 1e-5).squareRoot() * Double(gamma[i]) + Double(beta[i])) }
        }
        LayerNorm(weight: Tensor(shape: [width], storage: gamma), bias: Tensor(shape: [width], storage: beta))(&x, rows: rows)
        #expect(maxAbsDifference(x, expected) < 1e-4)
    }

    @Test func activationsAndSoftmax() {
        var values: [Float] = [-3, -1, 0, 0.5, 2]
        Activation.gelu(&values, compute: ComputeContext())
        let gelu = [-3.0, -1, 0, 0.5, 2].map { Float(0.5 * $0 * (1 + erf($0 / 2.0.squareRoot()))) }
        #expect(maxAbsDifference(values, gelu) < 1e-6)
        values = [-3, -1, 0, 0.5, 2]
        Activation.quickGELU(&values, compute: ComputeContext())
        let quick = [-3.0, -1, 0, 0.5, 2].map { Float($0 / (1 + exp(-1.702 * $0))) }
        #expect(maxAbsDifference(values, quick) < 1e-6)
        var row: [Float] = [1, 2, -.infinity, 1000]
        row.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: 4) }
        #expect(row[2] == 0 && abs(row.reduce(0, +) - 1) < 1e-6 && row[3] > 0.999)
        var r: [Float] = [-1, 2]
        relu(&r)
        #expect(r == [0, 2])
        let unit = l2Normalized([3, 4])
        #expect(abs(unit[0] - 0.6) < 1e-7 && abs(unit[1] - 0.8) < 1e-7)
    }

    /// Naive multi-head attention in Double: scores, mask, softmax, weighted sum.
    static func naiveAttention(q: [Float], k: [Float], v: [Float], sequence: Int, heads: Int, headDim: Int, causal: Bool) -> [Float] {
        let width = heads * headDim
        var out = [Float](repeating: 0, count: sequence * width)
        for h in 0..<heads { for i in 0..<sequence {
            var scores = (0..<sequence).map { j -> Double in
                if causal && j > i { return -Double.infinity }
                var s = 0.0
                for d in 0..<headDim { s += Double(q[i * width + h * headDim + d]) * Double(k[j * width + h * headDim + d]) }
                return s / Double(headDim).squareRoot()
            }
            let m = scores.max()!
            scores = scores.map { exp($0 - m) }
            let total = scores.reduce(0, +)
            for d in 0..<headDim {
                var sum = 0.0
                for j in 0..<sequence { sum += scores[j] / total * Double(v[j * width + h * headDim + d]) }
                out[i * width + h * headDim + d] = Float(sum)
            }
        } }
        return out
    }

    @Test(arguments: [false, true]) func attentionMatchesNaive(causal: Bool) {
        var random = SeededRandom(causal ? 5 : 6)
        let (sequence, heads, headDim) = (7, 3, 4)
        let width = heads * headDim
        let (q, k, v) = (random.floats(sequence * width), random.floats(sequence * width), random.floats(sequence * width))
        var out = [Float](repeating: 0, count: sequence * width)
        q.withUnsafeBufferPointer { q in k.withUnsafeBufferPointer { k in v.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBufferPointer { o in
                scaledDotProductAttention(queries: q.baseAddress!, queryCount: sequence, queryStride: width,
                                          keys: k.baseAddress!, values: v.baseAddress!, keyCount: sequence, keyStride: width,
                                          heads: heads, headDim: headDim, causal: causal,
                                          output: o.baseAddress!, outputStride: width, scratch: ScratchBuffer())
            }
        } } }
        let expected = Self.naiveAttention(q: q, k: k, v: v, sequence: sequence, heads: heads, headDim: headDim, causal: causal)
        #expect(maxAbsDifference(out, expected) < 1e-5)
    }

    /// The threaded form over sequences of different lengths stored back to back, with a packed [q | k | v]
    /// row stride: lengths past one block of 64 keys and with a ragged last vector, a head width of 72
    /// (one 64-column block plus an 8-column rest), against the naive attention of each sequence alone.
    @Test(arguments: [false, true]) func raggedBatchAttentionMatchesNaive(causal: Bool) {
        Self.expectPackedAttentionMatchesNaive(lengths: [3, 70, 1, 9], heads: 2, headDim: 72, causal: causal, seed: causal ? 15 : 16)
    }

    /// A GGUF F16 matrix, expanded per product into the packed layout on two threads (ragged panels, two
    /// k-slices, 1152 outputs) or through OpenBLAS, with and without a bias: within fp32 rounding of the
    /// product in Double.
    @Test(arguments: [(37, 70, 9), (64, 48, 130), (96, 330, 40), (1152, 768, 20)])
    func f16LinearMatchesDouble(outputs: Int, inputs: Int, rows: Int) {
        var random = SeededRandom(UInt64(outputs * 7 + inputs))
        let halves = random.floats(outputs * inputs).map(Float16.init), x = random.floats(rows * inputs), bias = random.floats(outputs)
        halves.withUnsafeBytes { raw in
            let matrix = QuantizedMatrix(format: .f16, rows: outputs, columns: inputs, data: raw.baseAddress!)
            for (product, withBias) in [(QuantizedLinear.ExpandedProduct.packed, true), (.packed, false), (.blas, true)] {
                let y = QuantizedLinear(weight: matrix, bias: withBias ? bias : nil, expandedProduct: product)
                    .forward(x, rows: rows, compute: ComputeContext(threads: 2))
                var worst: Double = 0
                for r in 0..<rows {
                    for j in 0..<outputs {
                        var sum = withBias ? Double(bias[j]) : 0
                        for k in 0..<inputs { sum += Double(x[r * inputs + k]) * Double(Float(halves[j * inputs + k])) }
                        worst = max(worst, abs(sum - Double(y[r * outputs + j])))
                    }
                }
                #expect(worst < 5e-5, "\(product) \(outputs)x\(inputs)")
            }
        }
    }

    /// A sequence long enough for the packed-product path (a tower's 1024+ patches; here 530, in two query blocks)
    /// mixed with short ones on the per-head kernel, against the naive attention of each sequence alone.
    @Test(arguments: [false, true]) func longSequenceAttentionMatchesNaive(causal: Bool) {
        Self.expectPackedAttentionMatchesNaive(lengths: [9, 530, 3], heads: 2, headDim: 40, causal: causal, seed: causal ? 25 : 26)
    }

    /// The threaded attention over `lengths` sequences stored back to back in packed [q | k | v] rows, on 2
    /// threads, within 1e-5 of the naive attention of each sequence alone.
    static func expectPackedAttentionMatchesNaive(lengths: [Int], heads: Int, headDim: Int, causal: Bool, seed: UInt64) {
        var random = SeededRandom(seed)
        let width = heads * headDim, rows = lengths.reduce(0, +)
        let qkv = random.floats(rows * 3 * width)
        var out = [Float](repeating: 0, count: rows * width)
        qkv.withUnsafeBufferPointer { qkv in out.withUnsafeMutableBufferPointer { o in
            let base = qkv.baseAddress!
            scaledDotProductAttention(queries: base, keys: base + width, values: base + 2 * width, stride: 3 * width, sequenceLengths: lengths,
                                      heads: heads, headDim: headDim, causal: causal, output: o.baseAddress!, outputStride: width,
                                      compute: ComputeContext(threads: 2))
        } }
        var first = 0
        for length in lengths {
            func part(_ column: Int) -> [Float] {
                (first..<(first + length)).flatMap { r in qkv[(r * 3 + column) * width..<(r * 3 + column + 1) * width] }
            }
            let expected = naiveAttention(q: part(0), k: part(1), v: part(2), sequence: length, heads: heads, headDim: headDim, causal: causal)
            #expect(maxAbsDifference(Array(out[(first * width)..<((first + length) * width)]), expected) < 1e-5)
            first += length
        }
    }

    /// ggml's fp16 GELU and quick GELU tables: at every fp16 input in ±10 (and past it), the formula ggml
    /// tabulates (ggml_gelu_f32 / ggml_gelu_quick_f32 in Double at the fp16 input, stored as fp16); identity
    /// above 10 and zero below -10 for the tanh GELU.
    @Test func halfTableActivationsMatchGGMLFormula() {
        let halves = (0..<65536).map { Float(Float16(bitPattern: UInt16($0))) }.filter { $0.isFinite && abs($0) <= 12 }
        var gelu = halves, quick = halves
        Activation.geluTanhHalfTable(&gelu, compute: ComputeContext(threads: 2))
        Activation.quickGELUHalfTable(&quick, compute: ComputeContext(threads: 2))
        for (i, h) in halves.enumerated() {
            let x = Double(h)
            let expectedGELU = h <= -10 ? 0 : h >= 10 ? h : Float(Float16(0.5 * x * (1 + tanh(0.7978845608028654 * x * (1 + 0.044715 * x * x)))))
            let expectedQuick = Float(Float16(x / (1 + exp(-1.702 * x))))
            // One fp16 step, plus float's cancellation in 1 + tanh(·) for negative inputs (~0.5·|h|·2⁻²⁴).
            #expect(abs(gelu[i] - expectedGELU) <= Float(Float16(expectedGELU).ulp) + 5e-7, "gelu(\(h))")
            #expect(abs(quick[i] - expectedQuick) <= Float(Float16(expectedQuick).ulp), "quick gelu(\(h))")
        }
    }

    /// The vectorised GELU and QuickGELU (eight at a time, with a scalar rest) over a wide range of inputs,
    /// against the exact functions in Double: within 2e-6 (relative above 1), also where exp over- or underflows.
    @Test func vectorisedActivationsMatchDouble() {
        let inputs = (0..<1003).map { Float($0 - 501) / 25 } + [-120, -90, 90, 120]
        var gelu = inputs, quick = inputs
        Activation.gelu(&gelu, compute: ComputeContext(threads: 2))
        Activation.quickGELU(&quick, compute: ComputeContext(threads: 2))
        let exactGELU = inputs.map { Float(0.5 * Double($0) * (1 + erf(Double($0) / 2.0.squareRoot()))) }
        let exactQuick = inputs.map { Float(Double($0) / (1 + exp(-1.702 * Double($0)))) }
        func worst(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max()! }
        #expect(worst(gelu, exactGELU) < 2e-6)
        #expect(worst(quick, exactQuick) < 2e-6)
    }

    /// Causal attention: a prefix's outputs do not depend on later positions (what text truncation relies on).
    @Test func causalPrefixIsIndependentOfSuffix() {
        var random = SeededRandom(9)
        let width = 8
        let attention = MultiHeadAttention(
            inProjection: Linear(weight: Tensor(shape: [3 * width, width], storage: random.floats(3 * width * width)), bias: Tensor(shape: [3 * width], storage: random.floats(3 * width))),
            outProjection: Linear(weight: Tensor(shape: [width, width], storage: random.floats(width * width)), bias: nil),
            heads: 2)
        let full = random.floats(10 * width)
        func run(_ x: [Float], _ sequence: Int) -> [Float] {
            var out = [Float](repeating: 0, count: x.count)
            x.withUnsafeBufferPointer { x in out.withUnsafeMutableBufferPointer { o in
                attention.apply(x.baseAddress!, batch: 1, sequence: sequence, causal: true, into: o.baseAddress!, scratch: ScratchBuffer())
            } }
            return out
        }
        let whole = run(full, 10)
        let prefix = run(Array(full[0..<(4 * width)]), 4)
        #expect(maxAbsDifference(Array(whole[0..<(4 * width)]), prefix) < 1e-6)
    }
}
