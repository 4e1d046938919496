import Testing
import VLMTensor

/// The channels-last convolution and pooling against the direct NCHW loops of `KernelTests`, with the
/// layouts swapped here by index arithmetic.
@Suite struct ChannelsLastConvolutionTests {
    /// [images, channels, plane] ↔ [images, plane, channels].
    static func swapped(_ x: [Float], images: Int, rows: Int, cols: Int) -> [Float] {
        var out = x
        for b in 0..<images { for r in 0..<rows { for c in 0..<cols { out[(b * cols + c) * rows + r] = x[(b * rows + r) * cols + c] } } }
        return out
    }

    /// Sizes give 2 × 13 × 12 = 312 output pixels at stride 1: more than one unfolding block of 256 rows.
    @Test(arguments: [(3, 1, 1), (3, 2, 1), (1, 1, 0), (1, 2, 0), (5, 2, 2), (3, 1, 0)])
    func convolutionMatchesDirectLoops(kernel: Int, stride: Int, padding: Int) {
        var random = SeededRandom(UInt64(500 + kernel * 100 + stride * 10 + padding))
        let (batch, inChannels, outChannels, height, width) = (2, 3, 5, 13, 12)
        let x = random.floats(batch * inChannels * height * width)
        let weight = random.floats(outChannels * inChannels * kernel * kernel)
        let bias = random.floats(outChannels)
        let conv = ChannelsLastConv2D(Conv2D(weight: Tensor(shape: [outChannels, inChannels, kernel, kernel], storage: weight), bias: bias,
                                             stride: stride, padding: padding))
        let ours = conv(Self.swapped(x, images: batch, rows: inChannels, cols: height * width),
                        batch: batch, height: height, width: width, scratch: ScratchBuffer(), compute: ComputeContext())
        let expected = KernelTests.naiveConvolution(x, batch: batch, inChannels: inChannels, height: height, width: width, weight: weight,
                                                    bias: bias, outChannels: outChannels, kernel: kernel, stride: stride, padding: padding)
        #expect(ours.height == (height + 2 * padding - kernel) / stride + 1)
        #expect(ours.width == (width + 2 * padding - kernel) / stride + 1)
        let back = Self.swapped(ours.values, images: batch, rows: ours.height * ours.width, cols: outChannels)
        #expect(maxAbsDifference(back, expected) < 1e-5)
    }

    /// The fused epilogue: output = ReLU(residual + conv(x) + bias), on the unfolding and the pointwise paths.
    @Test(arguments: [(3, 1), (1, 0)]) func residualAndReluMatchSeparateSteps(kernel: Int, padding: Int) {
        var random = SeededRandom(UInt64(60 + kernel))
        let (inChannels, outChannels, size) = (6, 5, 13)
        let x = random.floats(2 * inChannels * size * size)
        let weight = random.floats(outChannels * inChannels * kernel * kernel)
        let bias = random.floats(outChannels)
        let conv = ChannelsLastConv2D(Conv2D(weight: Tensor(shape: [outChannels, inChannels, kernel, kernel], storage: weight), bias: bias,
                                             padding: padding))
        let residual = random.floats(2 * outChannels * size * size)  // channels-last
        var fused = residual
        conv.accumulate(Self.swapped(x, images: 2, rows: inChannels, cols: size * size), batch: 2, height: size, width: size,
                        into: &fused, scratch: ScratchBuffer(), compute: ComputeContext(), relu: true)
        let plain = KernelTests.naiveConvolution(x, batch: 2, inChannels: inChannels, height: size, width: size, weight: weight, bias: bias,
                                                 outChannels: outChannels, kernel: kernel, stride: 1, padding: padding)
        let expected = zip(Self.swapped(plain, images: 2, rows: outChannels, cols: size * size), residual).map { max($0 + $1, 0) }
        #expect(maxAbsDifference(fused, expected) < 1e-5)
    }

    @Test func averagePoolFloorsOddSizesPerChannel() {
        // Two images of 5×5 with 3 channels; channel c of pixel p in image b holds 100·b + 10·p + c.
        let (images, size, channels) = (2, 5, 3)
        var x = [Float](repeating: 0, count: images * size * size * channels)
        for b in 0..<images { for p in 0..<(size * size) { for c in 0..<channels {
            x[(b * size * size + p) * channels + c] = Float(100 * b + 10 * p + c)
        } } }
        let pooled = averagePool2DChannelsLast(x, images: images, height: size, width: size, channels: channels, kernel: 2,
                                               compute: ComputeContext())
        #expect(pooled.height == 2 && pooled.width == 2)
        #expect(pooled.values.count == images * 4 * channels)
        // Image 1, cell (1, 1) covers pixels 12, 13, 17, 18; channel 2.
        #expect(pooled.values[(4 + 3) * channels + 2] == Float(100 + 10 * (12 + 13 + 17 + 18) / 4 + 2))
        #expect(pooled.values[0] == Float(10 * (0 + 1 + 5 + 6) / 4))
    }
}

/// Winograd F(4,3) against the direct NCHW loops: ragged tiles at the right and bottom edges (sizes not
/// multiples of 4), both paddings, more tiles than one block (so blocks and thread splits are
/// exercised), and the fused residual + ReLU epilogue.
@Suite struct WinogradConvolutionTests {
    @Test(arguments: [(2, 13, 11, 8, 16, 1, false), (4, 52, 50, 16, 16, 1, true), (1, 7, 7, 16, 8, 1, true), (2, 10, 9, 8, 8, 0, false)])
    func winogradMatchesDirectLoops(batch: Int, height: Int, width: Int, inChannels: Int, outChannels: Int, padding: Int, residual: Bool) {
        let run = WinogradCase(seed: UInt64(900 + height * 10 + padding), precision: .fp32, batch: batch, height: height, width: width,
                               inChannels: inChannels, outChannels: outChannels, padding: padding, residual: residual)
        let (oh, ow, ours, expected) = (run.outputHeight, run.outputWidth, run.ours, run.expected)
        #expect(oh == height + 2 * padding - 2 && ow == width + 2 * padding - 2)
        #expect(maxAbsDifference(ours, expected) < 1e-4)
    }

    @Test func stridedOrOddChannelConvolutionsAreNotWinogradCandidates() {
        let filter = Tensor(shape: [8, 8, 3, 3], storage: [Float](repeating: 0, count: 576))
        #expect(!WinogradConv3x3.supports(Conv2D(weight: filter, stride: 2, padding: 1)))
        #expect(!WinogradConv3x3.supports(Conv2D(weight: Tensor(shape: [8, 3, 3, 3], storage: [Float](repeating: 0, count: 216)), padding: 1)))
        #expect(!WinogradConv3x3.supports(Conv2D(weight: Tensor(shape: [8, 8, 1, 1], storage: [Float](repeating: 0, count: 64)))))
        #expect(WinogradConv3x3.supports(Conv2D(weight: filter, padding: 1)))
    }
}

/// One random 3×3 convolution through `WinogradConv3x3` at `precision` (with a random residual and ReLU
/// when `residual`), and the direct NCHW loops' result for it, both channels-last.
struct WinogradCase {
    let x: [Float]
    let weight: [Float]
    let bias: [Float]
    let shortcut: [Float]
    let outputHeight: Int
    let outputWidth: Int
    let ours: [Float]
    let expected: [Float]

    init(seed: UInt64, precision: MatrixPrecision, batch: Int, height: Int, width: Int, inChannels: Int, outChannels: Int, padding: Int,
         residual: Bool) {
        var random = SeededRandom(seed)
        (x, weight, bias) = (random.floats(batch * inChannels * height * width), random.floats(outChannels * inChannels * 9),
                             random.floats(outChannels))
        let conv = Conv2D(weight: Tensor(shape: [outChannels, inChannels, 3, 3], storage: weight), bias: bias, padding: padding)
        #expect(WinogradConv3x3.supports(conv))
        let winograd = WinogradConv3x3(conv, precision: precision)
        let (oh, ow) = winograd.outputSize(height: height, width: width)
        (outputHeight, outputWidth) = (oh, ow)
        let shortcut = residual ? random.floats(batch * oh * ow * outChannels) : [Float](repeating: 0, count: batch * oh * ow * outChannels)
        var ours = shortcut
        let input = ChannelsLastConvolutionTests.swapped(x, images: batch, rows: inChannels, cols: height * width)
        input.withUnsafeBufferPointer { input in
            ours.withUnsafeMutableBufferPointer { output in
                winograd.apply(input.baseAddress!, batch: batch, height: height, width: width, into: output.baseAddress!,
                               scratch: ScratchBuffer(), compute: ComputeContext(threads: 2), accumulate: residual, relu: residual)
            }
        }
        let plain = KernelTests.naiveConvolution(x, batch: batch, inChannels: inChannels, height: height, width: width, weight: weight,
                                                 bias: bias, outChannels: outChannels, kernel: 3, stride: 1, padding: padding)
        let sum = zip(ChannelsLastConvolutionTests.swapped(plain, images: batch, rows: outChannels, cols: oh * ow), shortcut).map(+)
        (self.shortcut, self.ours, expected) = (shortcut, ours, residual ? sum.map { max($0, 0) } : sum)
    }
}
