import CPNG
import Foundation

/// 8-bit PNG encoding through libpng's simplified write API (`png_image_write_to_memory`), which, like
/// the simplified read API, traps libpng's longjmp errors internally and reports them in `png_image.message`.
public enum PNGEncoder {
    /// PNG bytes of an RGB image.
    public static func encode(_ image: RGBImage) throws(ImageError) -> [UInt8] {
        try encode(pixels: image.pixels, width: image.width, height: image.height, hasAlpha: false)
    }

    /// PNG bytes of an RGBA image given as interleaved 8-bit samples (non-premultiplied alpha).
    public static func encodeRGBA(pixels: [UInt8], width: Int, height: Int) throws(ImageError) -> [UInt8] {
        try encode(pixels: pixels, width: width, height: height, hasAlpha: true)
    }

    private static func encode(pixels: [UInt8], width: Int, height: Int, hasAlpha: Bool) throws(ImageError) -> [UInt8] {
        let channels = hasAlpha ? 4 : 3
        guard width > 0, height > 0, width <= Int(Int32.max) / channels, height <= Int(Int32.max) else {
            throw .encodingFailed("invalid image size \(width)x\(height)")
        }
        guard pixels.count == width * height * channels else {
            throw .encodingFailed("\(pixels.count) bytes do not match \(width)x\(height)x\(channels)")
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = UInt32(hasAlpha ? PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA : PNG_FORMAT_FLAG_COLOR)
        defer { png_image_free(&image) }

        let result: Result<[UInt8], ImageError> = pixels.withUnsafeBytes { raw in
            // First call: libpng computes the encoded size without writing; second call: writes it.
            var size: png_alloc_size_t = 0
            guard png_image_write_to_memory(&image, nil, &size, 0, raw.baseAddress, 0, nil) != 0, size > 0 else {
                return .failure(.encodingFailed(libpngMessage(image)))
            }
            var out = [UInt8](repeating: 0, count: Int(size))
            let ok = out.withUnsafeMutableBytes { dst in
                png_image_write_to_memory(&image, dst.baseAddress, &size, 0, raw.baseAddress, 0, nil)
            }
            guard ok != 0 else { return .failure(.encodingFailed(libpngMessage(image))) }
            return .success(Array(out.prefix(Int(size))))
        }
        return try result.get()
    }
}
