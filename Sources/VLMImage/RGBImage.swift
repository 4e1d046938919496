/// An 8-bit RGB image, pixels interleaved row-major: pixel (x, y) channel c is at `(y * width + x) * 3 + c`.
///
/// This is the one in-memory image type of the module: decoders produce it, preprocessing and the
/// heatmap overlay consume it. It is a value type; copies share storage until written (Array COW).
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// Read-only outside the module so the count always matches the size.
    public internal(set) var pixels: [UInt8]

    /// Wraps existing pixels, checking that there are exactly `width * height * 3` of them.
    public init(width: Int, height: Int, pixels: [UInt8]) throws(ImageError) {
        let (area, overflow) = width.multipliedReportingOverflow(by: height)
        guard width > 0, height > 0, !overflow, area <= Int.max / 3, pixels.count == area * 3 else {
            throw .invalidArgument("RGBImage: \(pixels.count) bytes do not make a \(width)x\(height) RGB image")
        }
        self.init(unchecked: width, height: height, pixels: pixels)
    }

    /// For this module's own producers, whose sizes are correct by construction.
    init(unchecked width: Int, height: Int, pixels: [UInt8]) {
        assert(pixels.count == width * height * 3)
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A solid-colour image.
    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8)) throws(ImageError) {
        let (area, overflow) = width.multipliedReportingOverflow(by: height)
        guard width > 0, height > 0, !overflow, area <= PNGDecoder.defaultPixelBudget else {
            throw .invalidArgument("RGBImage: a \(width)x\(height) image is not allowed")
        }
        self.init(unchecked: width, height: height, fill: fill)
    }

    init(unchecked width: Int, height: Int, fill: (UInt8, UInt8, UInt8)) {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in stride(from: 0, to: pixels.count, by: 3) {
            pixels[i] = fill.0
            pixels[i + 1] = fill.1
            pixels[i + 2] = fill.2
        }
        self.init(unchecked: width, height: height, pixels: pixels)
    }

    /// The colour at (x, y).
    public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// The daemon's image-cache key: SHA-256 (hex) over the width and height (8 bytes each, big-endian)
    /// followed by the pixel bytes. Equal pixels and size give equal keys whatever file format or
    /// encoding the image arrived in; the size is hashed so a 2x3 and a 3x2 image never collide.
    public var contentDigest: String {
        var header = [UInt8]()
        for v in [UInt64(width), UInt64(height)] {
            for shift in stride(from: 56, through: 0, by: -8) { header.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
        }
        var hasher = SHA256()
        hasher.update(header)
        hasher.update(pixels)
        return SHA256.hexString(hasher.finalize())
    }
}

extension RGBImage {
    /// The sub-image `[x, x+width) x [y, y+height)`, clamped to the image bounds.
    ///
    /// Throws if the rectangle has a non-positive size or does not overlap the image at all: a caller
    /// asking for that has a bug or bad input, and an empty image would only fail later, far away.
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) throws(ImageError) -> RGBImage {
        guard w > 0, h > 0 else {
            throw .invalidArgument("crop \(w)x\(h) at (\(x), \(y)): width and height must be positive")
        }
        let (xEnd, xOverflow) = x.addingReportingOverflow(w)
        let (yEnd, yOverflow) = y.addingReportingOverflow(h)
        let x0 = max(0, x), y0 = max(0, y)
        let x1 = xOverflow ? width : min(width, xEnd)
        let y1 = yOverflow ? height : min(height, yEnd)
        guard x0 < x1, y0 < y1 else {
            throw .invalidArgument("crop \(w)x\(h) at (\(x), \(y)) lies outside the \(width)x\(height) image")
        }
        var out = [UInt8]()
        out.reserveCapacity((x1 - x0) * (y1 - y0) * 3)
        for row in y0..<y1 {
            let start = (row * width + x0) * 3
            out.append(contentsOf: pixels[start..<(start + (x1 - x0) * 3)])
        }
        return RGBImage(unchecked: x1 - x0, height: y1 - y0, pixels: out)
    }
}
