import CPNG
import Foundation

/// Decodes PNG files to `RGBImage` with the colour conversion of Pillow's `Image.open(p).convert("RGB")`,
/// the conversion open_clip's reference pipeline applies.
///
/// Pillow's rules, reproduced here:
///  * gray (1/2/4/8-bit) is replicated to R=G=B; low bit depths are scaled (1-bit to 0/255, 2-bit x85, 4-bit x17);
///  * palette images are looked up in the palette; transparency (tRNS) is ignored;
///  * alpha (gray+alpha, RGBA) is dropped, not composited: a transparent pixel keeps its stored colour;
///  * 16-bit RGB keeps the high byte of each sample (`v >> 8`);
///  * 16-bit gray (Pillow mode "I;16") is *clipped*: `min(v, 255)`, so most 16-bit gray photos come out
///    nearly white. That is Pillow's behaviour and therefore what the reference model sees.
///  * gAMA/cHRM/sRGB/iCCP are ignored (no colour management).
///
/// One documented deviation: 16-bit gray+alpha and 16-bit RGBA images are reduced to 8 bits by libpng's
/// rounding, `round(v * 255 / 65535)`, where Pillow truncates to `v >> 8`. The two differ by at most 1
/// (measured on random samples in `PNGDecoderTests`). libpng's simplified API offers 16-bit output with
/// alpha only premultiplied, which would lose the colour of transparent pixels; rounding is the lesser error.
///
/// libpng reports errors with longjmp. The simplified API (`png_image_*`) catches them inside libpng
/// (png_safe_execute) and returns 0 with the message in `png_image.message`, so no longjmp ever crosses
/// a Swift frame. No other libpng entry point is used.
public struct PNGDecoder: Sendable {
    /// Pillow's own decompression-bomb threshold is ~89 M pixels; 50 M pixels of 16-bit RGB are 300 MB.
    public static let defaultPixelBudget = 50_000_000
    /// Files larger than this are refused before they are read into memory.
    public static let defaultMaxFileBytes = 256 << 20

    /// Largest `width * height` decoded; larger images throw `ImageError.tooLarge` after only the header was read.
    public var pixelBudget: Int
    public var maxFileBytes: Int

    public init(pixelBudget: Int = PNGDecoder.defaultPixelBudget, maxFileBytes: Int = PNGDecoder.defaultMaxFileBytes) {
        self.pixelBudget = pixelBudget
        self.maxFileBytes = maxFileBytes
    }

    /// Decodes PNG bytes held in memory. `input` names them in error messages.
    public func decode(_ bytes: [UInt8], input: String = "PNG input") throws(ImageError) -> RGBImage {
        let header = try PNGStream.header(of: bytes, input: input)
        let (pixels, overflow) = header.width.multipliedReportingOverflow(by: header.height)
        guard !overflow, pixels <= pixelBudget else {
            throw .tooLarge(input: input, width: header.width, height: header.height, budget: pixelBudget)
        }
        let stream = try PNGStream.withoutIgnoredChunks(bytes, input: input)
        return try decodeWithLibpng(stream, header: header, input: input)
    }

    /// Decodes a base64-encoded PNG (the daemon's wire format for images). Line breaks are ignored and a
    /// `data:image/png;base64,` URL prefix is accepted.
    public func decode(base64: String, input: String = "base64 PNG input") throws(ImageError) -> RGBImage {
        var payload = Substring(base64)
        if payload.hasPrefix("data:"), let comma = payload.firstIndex(of: ",") {
            payload = payload[payload.index(after: comma)...]
        }
        guard let data = Data(base64Encoded: String(payload), options: .ignoreUnknownCharacters) else {
            throw .invalidPNG(input: input, reason: "not valid base64")
        }
        return try decode([UInt8](data), input: input)
    }

    /// Reads and decodes a PNG file.
    public func decode(contentsOf path: String) throws(ImageError) -> RGBImage {
        try decode(readFile(path, maxBytes: maxFileBytes), input: path)
    }

    // MARK: - libpng

    /// How libpng is asked to deliver the samples for a given file, and how we reduce them to RGB8.
    private enum OutputPlan {
        /// 8-bit RGB straight from libpng (all ≤8-bit files without an alpha channel).
        case rgb8
        /// 8-bit RGBA from libpng, alpha dropped (8-bit alpha files; 16-bit alpha files rounded by libpng).
        case rgba8
        /// 16-bit RGB, reduced per Pillow: gray clipped (`min(v, 255)`), colour truncated (`v >> 8`).
        case rgb16(clipGray: Bool)

        init(_ h: PNGStream.Header) {
            switch (h.bitDepth, h.hasAlphaChannel) {
            case (16, false): self = .rgb16(clipGray: h.colorType == 0)
            case (_, true): self = .rgba8
            default: self = .rgb8
            }
        }

        var format: UInt32 {
            switch self {
            case .rgb8: UInt32(PNG_FORMAT_FLAG_COLOR)
            case .rgba8: UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
            case .rgb16: UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_LINEAR)
            }
        }
    }

    private func decodeWithLibpng(_ stream: [UInt8], header: PNGStream.Header, input: String) throws(ImageError) -> RGBImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }

        let plan = OutputPlan(header)
        let result: Result<RGBImage, ImageError> = stream.withUnsafeBytes { raw in
            guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else {
                return .failure(.invalidPNG(input: input, reason: libpngMessage(image)))
            }
            // libpng parsed the same IHDR; refuse if it somehow disagrees with the budgeted one.
            guard Int(image.width) == header.width, Int(image.height) == header.height else {
                return .failure(.invalidPNG(input: input, reason: "libpng read a different size from the header"))
            }
            image.format = plan.format
            // With the colour chunks removed, libpng assumes 8-bit data is sRGB and 16-bit data linear, and
            // converts when the output encoding differs. 16-bit files read as 16-bit (linear) output are thus
            // passed through; 16-bit alpha files read as 8-bit (sRGB) output need this flag, which declares
            // their samples sRGB so libpng only rescales them instead of gamma-encoding them.
            if header.bitDepth == 16, case .rgba8 = plan { image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB) }
            switch plan {
            case .rgb8:
                return finishRead(&image, channels: 3, input: input, as: UInt8.self).map { buffer in
                    RGBImage(unchecked: header.width, height: header.height, pixels: buffer)
                }
            case .rgba8:
                return finishRead(&image, channels: 4, input: input, as: UInt8.self).map { buffer in
                    RGBImage(unchecked: header.width, height: header.height, pixels: Self.dropAlpha(buffer))
                }
            case .rgb16(let clipGray):
                return finishRead(&image, channels: 3, input: input, as: UInt16.self).map { buffer in
                    let pixels = clipGray ? buffer.map { UInt8(min($0, 255)) } : buffer.map { UInt8($0 >> 8) }
                    return RGBImage(unchecked: header.width, height: header.height, pixels: pixels)
                }
            }
        }
        return try result.get()
    }

    /// Allocates the output (the size was checked against the budget) and lets libpng fill it.
    private func finishRead<Sample: FixedWidthInteger>(
        _ image: inout png_image, channels: Int, input: String, as: Sample.Type
    ) -> Result<[Sample], ImageError> {
        var buffer = [Sample](repeating: 0, count: Int(image.width) * Int(image.height) * channels)
        let ok = buffer.withUnsafeMutableBytes { out in
            png_image_finish_read(&image, nil, out.baseAddress, 0, nil)
        }
        guard ok != 0 else { return .failure(.invalidPNG(input: input, reason: libpngMessage(image))) }
        return .success(buffer)
    }

    private static func dropAlpha(_ rgba: [UInt8]) -> [UInt8] {
        var rgb = [UInt8](repeating: 0, count: rgba.count / 4 * 3)
        rgb.withUnsafeMutableBufferPointer { out in
            rgba.withUnsafeBufferPointer { src in
                for p in 0..<(src.count / 4) {
                    out[p * 3] = src[p * 4]
                    out[p * 3 + 1] = src[p * 4 + 1]
                    out[p * 3 + 2] = src[p * 4 + 2]
                }
            }
        }
        return rgb
    }
}

/// The NUL-terminated message libpng left in the image control structure.
func libpngMessage(_ image: png_image) -> String {
    withUnsafeBytes(of: image.message) { raw in
        let text = raw.prefix { $0 != 0 }
        return text.isEmpty ? "libpng reported an unspecified error" : "libpng: " + String(decoding: text, as: UTF8.self)
    }
}

/// Reads a whole file, refusing files above `maxBytes` before reading them.
func readFile(_ path: String, maxBytes: Int) throws(ImageError) -> [UInt8] {
    let size: Int
    do {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        size = (attributes[.size] as? NSNumber)?.intValue ?? 0
    } catch {
        throw .io(path: path, reason: "cannot open: \(error.localizedDescription)")
    }
    guard size <= maxBytes else { throw .io(path: path, reason: "file is \(size) bytes, above the limit of \(maxBytes)") }
    guard let data = FileManager.default.contents(atPath: path) else { throw .io(path: path, reason: "cannot read") }
    return [UInt8](data)
}
