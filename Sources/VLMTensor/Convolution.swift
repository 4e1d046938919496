/// Batch-norm parameters in inference mode: y = (x − mean) / sqrt(var + eps) · weight + bias.
public struct BatchNorm: Sendable {
    public let weight: [Float]
    public let bias: [Float]
    public let runningMean: [Float]
    public let runningVar: [Float]
    public let eps: Float

    public init(weight: [Float], bias: [Float], runningMean: [Float], runningVar: [Float], eps: Float = 1e-5) {
        precondition(bias.count == weight.count && runningMean.count == weight.count && runningVar.count == weight.count)
        (self.weight, self.bias, self.runningMean, self.runningVar, self.eps) = (weight, bias, runningMean, runningVar, eps)
    }
}

/// A 2-D convolution over NCHW batches, square kernel, computed as im2col + one matrix product per image.
public struct Conv2D: BatchConvolution, Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    /// [outChannels, inChannels · kernel · kernel], PyTorch's weight layout flattened.
    public let weight: [Float]
    /// [outChannels], or nil.
    public let bias: [Float]?

    /// `weight` is PyTorch's [out, in, k, k] tensor.
    public init(weight: Tensor, bias: [Float]? = nil, stride: Int = 1, padding: Int = 0) {
        precondition(weight.shape.count == 4 && weight.shape[2] == weight.shape[3], "conv weight must be [out, in, k, k]")
        outChannels = weight.shape[0]
        inChannels = weight.shape[1]
        kernelSize = weight.shape[2]
        precondition(bias == nil || bias!.count == outChannels)
        self.weight = weight.storage
        self.bias = bias
        self.stride = stride
        self.padding = padding
    }

    /// A bias-free convolution followed by batch norm, folded into one convolution with bias.
    /// Exact up to rounding: BN(conv(x)) = conv(x)·s + (beta − mean·s) with s = gamma / sqrt(var + eps),
    /// and scaling every output channel's filter by s scales that channel's output by s.
    public static func foldingBatchNorm(_ weight: Tensor, _ norm: BatchNorm, stride: Int = 1, padding: Int = 0) -> Conv2D {
        let outChannels = weight.shape[0]
        precondition(norm.weight.count == outChannels, "batch norm has \(norm.weight.count) channels, conv \(outChannels)")
        let perFilter = weight.count / outChannels
        var folded = weight.storage
        var bias = [Float](repeating: 0, count: outChannels)
        for o in 0..<outChannels {
            let scale = norm.weight[o] / (norm.runningVar[o] + norm.eps).squareRoot()
            for i in 0..<perFilter { folded[o * perFilter + i] *= scale }
            bias[o] = norm.bias[o] - norm.runningMean[o] * scale
        }
        return Conv2D(weight: Tensor(shape: weight.shape, storage: folded), bias: bias, stride: stride, padding: padding)
    }

    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height + 2 * padding - kernelSize) / stride + 1, (width + 2 * padding - kernelSize) / stride + 1)
    }

    /// True when the input itself is the im2col matrix (1×1, stride 1, no padding).
    private var isPointwise: Bool { kernelSize == 1 && stride == 1 && padding == 0 }

    /// Convolves `batch` images of [inChannels, height, width] into `output` ([batch, outChannels, oh, ow]).
    /// With `accumulate`, the result is added to what `output` already holds (a residual shortcut),
    /// so the addition happens inside the matrix product instead of in a separate pass. With `relu`,
    /// max(·, 0) is applied to each image's block right after its product, while it is still in cache.
    public func apply(
        _ input: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
        into output: UnsafeMutablePointer<Float>, scratch: ScratchBuffer, compute: ComputeContext,
        accumulate: Bool = false, relu: Bool = false
    ) {
        let (oh, ow) = outputSize(height: height, width: width)
        let spatial = oh * ow
        let patch = inChannels * kernelSize * kernelSize
        let columns: UnsafeMutablePointer<Float>? = isPointwise ? nil : scratch.region(patch * spatial)
        weight.withUnsafeBufferPointer { w in
            for n in 0..<batch {
                let image = input + n * inChannels * height * width
                let out = output + n * outChannels * spatial
                if let columns {
                    compute.parallelFor(inChannels, minimumPartSize: 4) { channels in
                        im2col(image, channels: channels, height: height, width: width, outHeight: oh, outWidth: ow, into: columns)
                    }
                }
                if let bias {
                    compute.parallelFor(outChannels, minimumPartSize: 8) { channels in
                        for o in channels {
                            let plane = out + o * spatial
                            if accumulate {
                                for i in 0..<spatial { plane[i] += bias[o] }
                            } else {
                                plane.update(repeating: bias[o], count: spatial)
                            }
                        }
                    }
                }
                // out[outChannels × spatial] (+)= W[outChannels × patch] · columns[patch × spatial]
                MatrixMultiply.gemm(
                    m: outChannels, n: spatial, k: patch, a: w.baseAddress!, lda: patch,
                    b: UnsafePointer(columns ?? UnsafeMutablePointer(mutating: image)), ldb: spatial,
                    beta: (bias != nil || accumulate) ? 1 : 0, c: out, ldc: spatial)
                if relu {
                    compute.parallelFor(outChannels, minimumPartSize: 8) { channels in
                        for i in (channels.lowerBound * spatial)..<(channels.upperBound * spatial) where out[i] < 0 { out[i] = 0 }
                    }
                }
            }
        }
    }

    /// Unfolds `channels` of one image into columns[(c·k + i)·k + j][y·outWidth + x] = image[c][y·s − p + i][x·s − p + j]
    /// (zero outside the image), the layout that matches the flattened filter.
    private func im2col(
        _ image: UnsafePointer<Float>, channels: Range<Int>, height: Int, width: Int, outHeight: Int, outWidth: Int,
        into columns: UnsafeMutablePointer<Float>
    ) {
        let k = kernelSize
        var row = columns + channels.lowerBound * k * k * outHeight * outWidth
        for c in channels {
            let plane = image + c * height * width
            for i in 0..<k {
                for j in 0..<k {
                    for y in 0..<outHeight {
                        let dst = row + y * outWidth
                        let sy = y * stride - padding + i
                        guard sy >= 0 && sy < height else { dst.update(repeating: 0, count: outWidth); continue }
                        let src = plane + sy * width
                        if stride == 1 {
                            // Contiguous run: zeros where x − p + j falls outside [0, width).
                            let first = max(0, padding - j)
                            let last = min(outWidth, width + padding - j)
                            if first > 0 { dst.update(repeating: 0, count: min(first, outWidth)) }
                            if last > first { (dst + first).update(from: src + (first - padding + j), count: last - first) }
                            if last < outWidth { (dst + max(last, 0)).update(repeating: 0, count: outWidth - max(last, 0)) }
                        } else {
                            for x in 0..<outWidth {
                                let sx = x * stride - padding + j
                                dst[x] = (sx >= 0 && sx < width) ? src[sx] : 0
                            }
                        }
                    }
                    row += outHeight * outWidth
                }
            }
        }
    }
}

/// A convolution over a batch of images (any memory layout: `Conv2D` is NCHW, `ChannelsLastConv2D` NHWC),
/// with the array conveniences written once over its pointer-level `apply`.
public protocol BatchConvolution {
    var inChannels: Int { get }
    var outChannels: Int { get }
    func outputSize(height: Int, width: Int) -> (height: Int, width: Int)
    func apply(_ input: UnsafePointer<Float>, batch: Int, height: Int, width: Int, into output: UnsafeMutablePointer<Float>,
               scratch: ScratchBuffer, compute: ComputeContext, accumulate: Bool, relu: Bool)
}

extension BatchConvolution {
    /// Array convenience for `apply` (fresh output).
    public func callAsFunction(_ input: [Float], batch: Int, height: Int, width: Int, scratch: ScratchBuffer,
                               compute: ComputeContext, relu: Bool = false)
        -> (values: [Float], height: Int, width: Int)
    {
        precondition(input.count == batch * inChannels * height * width, "conv input has \(input.count) values")
        let (oh, ow) = outputSize(height: height, width: width)
        let output = [Float](unsafeUninitializedCapacity: batch * outChannels * oh * ow) { buffer, initialized in
            input.withUnsafeBufferPointer { x in
                apply(x.baseAddress!, batch: batch, height: height, width: width, into: buffer.baseAddress!, scratch: scratch,
                      compute: compute, accumulate: false, relu: relu)
            }
            initialized = buffer.count
        }
        return (output, oh, ow)
    }

    /// Array convenience for `apply` that adds the convolution to `output` (a residual shortcut) in place.
    public func accumulate(_ input: [Float], batch: Int, height: Int, width: Int, into output: inout [Float],
                           scratch: ScratchBuffer, compute: ComputeContext, relu: Bool = false) {
        let (oh, ow) = outputSize(height: height, width: width)
        precondition(input.count == batch * inChannels * height * width && output.count == batch * outChannels * oh * ow,
                     "conv accumulate shapes")
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                apply(x.baseAddress!, batch: batch, height: height, width: width, into: y.baseAddress!, scratch: scratch,
                      compute: compute, accumulate: true, relu: relu)
            }
        }
    }
}
