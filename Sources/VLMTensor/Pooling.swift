/// Non-overlapping average pooling (PyTorch's AvgPool2d(k) with stride k, no padding, floor mode):
/// `planes` independent [height, width] planes (batch · channels for NCHW data).
public func averagePool2D(_ input: [Float], planes: Int, height: Int, width: Int, kernel: Int)
    -> (values: [Float], height: Int, width: Int)
{
    precondition(input.count == planes * height * width, "average pool input has \(input.count) values")
    let (oh, ow) = (height / kernel, width / kernel)
    var output = [Float](repeating: 0, count: planes * oh * ow)
    let scale = 1 / Float(kernel * kernel)
    input.withUnsafeBufferPointer { x in
        output.withUnsafeMutableBufferPointer { y in
            let (source, destination) = (x.baseAddress!, y.baseAddress!)
            parallelRanges(planes, minimumPerThread: 16) { range in
                for p in range {
                    let src = source + p * height * width
                    let dst = destination + p * oh * ow
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var sum: Float = 0
                            for i in 0..<kernel {
                                let row = src + (oy * kernel + i) * width + ox * kernel
                                for j in 0..<kernel { sum += row[j] }
                            }
                            dst[oy * ow + ox] = sum * scale
                        }
                    }
                }
            }
        }
    }
    return (output, oh, ow)
}
