/// Non-overlapping average pooling (AvgPool2d(k), stride k, floor mode) of channels-last images:
/// [images, height, width, channels] → [images, height / k, width / k, channels].
public func averagePool2DChannelsLast(_ input: [Float], images: Int, height: Int, width: Int, channels: Int, kernel: Int,
                                      compute: ComputeContext)
    -> (values: [Float], height: Int, width: Int)
{
    precondition(input.count == images * height * width * channels, "average pool input has \(input.count) values")
    let (oh, ow) = (height / kernel, width / kernel)
    let scale = 1 / Float(kernel * kernel)
    let output = [Float](unsafeUninitializedCapacity: images * oh * ow * channels) { buffer, initialized in
        input.withUnsafeBufferPointer { x in
            let (source, destination) = (x.baseAddress!, buffer.baseAddress!)
            compute.parallelFor(images * oh, minimumPartSize: 2) { outRows in
                for r in outRows {
                    let (n, oy) = (r / oh, r % oh)
                    for ox in 0..<ow {
                        let dst = destination + (r * ow + ox) * channels
                        dst.update(repeating: 0, count: channels)
                        for i in 0..<kernel {
                            for j in 0..<kernel {
                                let src = source + ((n * height + oy * kernel + i) * width + ox * kernel + j) * channels
                                for c in 0..<channels { dst[c] += src[c] }
                            }
                        }
                        for c in 0..<channels { dst[c] *= scale }
                    }
                }
            }
        }
        initialized = buffer.count
    }
    return (output, oh, ow)
}
