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
