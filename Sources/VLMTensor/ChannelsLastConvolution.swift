/// A 2-D convolution over channels-last (NHWC) batches, for convolution stacks (the ResNet towers).
///
/// Channels-last makes every pixel a contiguous row of channels, so:
/// - a 1×1 stride-1 convolution of the whole batch is one matrix product, [pixels × in] · [in × out],
///   with no unfolding at all;
/// - a k×k convolution unfolds each output pixel's patch with k·k contiguous copies of `inChannels`
///   floats (instead of NCHW's per-row scatter), and the unfolding runs on row blocks small enough that
///   the block is still in cache when the matrix product reads it;
/// - bias, the residual shortcut and ReLU are applied by the product to each tile of the output while
///   it is still in registers (`PackedMatrix`);
/// - a 3×3 stride-1 convolution over whole vectors of channels runs as Winograd F(4,3) instead
///   (`WinogradConv3x3`): 36 multiplications per 4×4 output tile and channel pair instead of 144.
/// Otherwise the filter is packed once at load as [k·k·in × out], in the order the unfolding writes a patch.
public struct ChannelsLastConv2D: BatchConvolution, Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    /// How the convolution is computed; only one form of the filter is kept.
    let method: Method
    /// [outChannels] (zeros when the source convolution had none).
    let bias: [Float]

    enum Method: Sendable {
        /// Unfolded patches times [kernel · kernel · inChannels, outChannels]: row (i·k + j)·in + c holds
        /// tap (i, j) of channel c.
        case unfolded(any PackedProduct)
        case winograd(WinogradConv3x3)
    }

    /// Repacks an NCHW convolution (PyTorch's [out, in, k, k] filter) for channels-last data, its
    /// products computed at `precision` (bf16 3×3 convolutions keep Winograd: measured faster than
    /// unfolding, and no further from fp32 on RN50).
    public init(_ conv: Conv2D, precision: MatrixPrecision = .fp32) {
        (inChannels, outChannels, kernelSize, stride, padding) =
            (conv.inChannels, conv.outChannels, conv.kernelSize, conv.stride, conv.padding)
        bias = conv.bias ?? [Float](repeating: 0, count: conv.outChannels)
        method = WinogradConv3x3.supports(conv)
            ? .winograd(WinogradConv3x3(conv, precision: precision)) : .unfolded(Self.packedForUnfolding(conv, precision: precision))
    }

    private static func packedForUnfolding(_ conv: Conv2D, precision: MatrixPrecision) -> any PackedProduct {
        let (k, cin, cout) = (conv.kernelSize, conv.inChannels, conv.outChannels)
        var packed = [Float](repeating: 0, count: k * k * cin * cout)
        for o in 0..<cout {
            for c in 0..<cin {
                for i in 0..<k {
                    for j in 0..<k { packed[((i * k + j) * cin + c) * cout + o] = conv.weight[((o * cin + c) * k + i) * k + j] }
                }
            }
        }
        return precision.packed(packed, rows: k * k * cin, columns: cout)
    }

    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height + 2 * padding - kernelSize) / stride + 1, (width + 2 * padding - kernelSize) / stride + 1)
    }

    /// Values of one unfolded patch (the matrix product's inner dimension).
    private var patch: Int { kernelSize * kernelSize * inChannels }

    /// True when the input itself is the unfolded matrix (1×1, stride 1, no padding).
    private var isPointwise: Bool { kernelSize == 1 && stride == 1 && padding == 0 }

    /// Output pixels per block: the unfolded block and its output together stay within about 1 MiB
    /// (a core's L2 on current x86 parts) but blocks stay large enough for an efficient product.
    private var blockRows: Int { max(256, (1 << 18) / (patch + outChannels)) }

    /// Convolves `batch` images of [height, width, inChannels] into `output` ([batch, oh, ow, outChannels]).
    /// With `accumulate`, `output` already holds a residual shortcut that the result is added to (inside
    /// the matrix product). With `relu`, max(·, 0) is applied after bias and residual.
    public func apply(
        _ input: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
        into output: UnsafeMutablePointer<Float>, scratch: ScratchBuffer, compute: ComputeContext,
        accumulate: Bool = false, relu: Bool = false
    ) {
        let weight: any PackedProduct
        switch method {
        case let .winograd(winograd):
            winograd.apply(input, batch: batch, height: height, width: width, into: output, scratch: scratch, compute: compute,
                           accumulate: accumulate, relu: relu)
            return
        case let .unfolded(packed):
            weight = packed
        }
        let (oh, ow) = outputSize(height: height, width: width)
        let rows = batch * oh * ow
        guard rows > 0 else { return }
        let block = isPointwise ? rows : min(rows, blockRows)
        let columns: UnsafeMutablePointer<Float>? = isPointwise ? nil : scratch.region(block * patch)
        for first in Swift.stride(from: 0, to: rows, by: block) {
            let count = min(block, rows - first)
            let a: UnsafePointer<Float>
            if let columns {
                compute.parallelFor(count, minimumPartSize: 32) { part in
                    unfold(input, height: height, width: width, outHeight: oh, outWidth: ow,
                           rows: (first + part.lowerBound)..<(first + part.upperBound), into: columns + part.lowerBound * patch)
                }
                a = UnsafePointer(columns)
            } else {
                a = input + first * inChannels
            }
            let out = output + first * outChannels
            // out[count × out] (+)= unfolded[count × patch] · W[patch × out]
            weight.multiply(a, lda: patch, m: count, into: out, ldc: outChannels, bias: bias, accumulate: accumulate, relu: relu,
                            compute: compute)
        }
    }

    /// Writes the patches of output pixels `rows` (numbered across the batch) as rows of `patch` values,
    /// tap-major: columns[r][(i·k + j)·in + c] = input[n][y·s − p + i][x·s − p + j][c], zero outside the image.
    private func unfold(
        _ input: UnsafePointer<Float>, height: Int, width: Int, outHeight: Int, outWidth: Int,
        rows: Range<Int>, into columns: UnsafeMutablePointer<Float>
    ) {
        let (k, cin) = (kernelSize, inChannels)
        var dst = columns
        for r in rows {
            let n = r / (outHeight * outWidth)
            let y = (r / outWidth) % outHeight
            let x = r % outWidth
            let image = input + n * height * width * cin
            for i in 0..<k {
                let sy = y * stride - padding + i
                for j in 0..<k {
                    let sx = x * stride - padding + j
                    if sy >= 0 && sy < height && sx >= 0 && sx < width {
                        dst.update(from: image + (sy * width + sx) * cin, count: cin)
                    } else {
                        dst.update(repeating: 0, count: cin)
                    }
                    dst += cin
                }
            }
        }
    }
}
