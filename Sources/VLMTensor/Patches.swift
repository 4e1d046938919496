/// How a batch of 3-channel images is stored.
public enum ImageLayout: Sendable, Equatable {
    /// [image][channel][y][x] (PyTorch's NCHW).
    case channelsFirst
    /// [image][y][x][channel] (llama.cpp's clip_image_f32).
    case channelsLast
}

/// The non-overlapping `patch` × `patch` tiles of `images` square images of side `size`, one row per
/// tile: [image][tile][channel · patch² + y · patch + x], tiles in row-major grid order. A linear layer
/// over these rows is a stride-`patch` convolution (a ViT's patch embedding), its kernel flattened
/// as (channel, y, x).
public func nonOverlappingPatches(_ pixels: [Float], images: Int, size: Int, patch: Int, layout: ImageLayout) -> [Float] {
    let side = size / patch, patchWidth = 3 * patch * patch, perImage = 3 * size * size
    precondition(side * patch == size && pixels.count == images * perImage, "\(pixels.count) values for \(images) images of \(size)²")
    var rows = [Float](repeating: 0, count: images * side * side * patchWidth)
    for b in 0..<images {
        for gy in 0..<side {
            for gx in 0..<side {
                let base = ((b * side + gy) * side + gx) * patchWidth
                for c in 0..<3 {
                    for y in 0..<patch {
                        for x in 0..<patch {
                            let (py, px) = (gy * patch + y, gx * patch + x)
                            let index = switch layout {
                            case .channelsFirst: (c * size + py) * size + px
                            case .channelsLast: (py * size + px) * 3 + c
                            }
                            rows[base + (c * patch + y) * patch + x] = pixels[b * perImage + index]
                        }
                    }
                }
            }
        }
    }
    return rows
}
