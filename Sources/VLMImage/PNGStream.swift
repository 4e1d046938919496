/// The parts of the PNG file structure this module reads itself, before libpng sees the bytes.
///
/// Two reasons to look at the chunks ourselves:
///  * the pixel budget is checked from the IHDR before libpng is even started, so a hostile header
///    never reaches an allocation;
///  * Pillow ignores colour management and transparency when it converts to RGB, but libpng's
///    simplified API acts on them (gamma-corrects, composites). Dropping those ancillary chunks
///    from the stream makes libpng return the stored samples unchanged, which is what Pillow uses.
///    Removing a chunk leaves every other chunk's CRC valid, so the result is still a valid PNG.
enum PNGStream {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Chunks dropped before decoding: gamma/colour-space information (gAMA, cHRM, sRGB, iCCP, cICP)
    /// and transparency (tRNS). See the type comment for why.
    static let ignoredChunks: Set<String> = ["gAMA", "cHRM", "sRGB", "iCCP", "cICP", "tRNS"]

    /// The fields of the IHDR chunk.
    struct Header: Equatable {
        var width: Int
        var height: Int
        var bitDepth: Int
        /// PNG colour type: 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA.
        var colorType: Int
        var interlaced: Bool

        var hasAlphaChannel: Bool { colorType == 4 || colorType == 6 }
    }

    /// Reads the signature and the IHDR (the first chunk by specification).
    static func header(of bytes: [UInt8], input: String) throws(ImageError) -> Header {
        guard bytes.count >= 8, Array(bytes[0..<8]) == signature else {
            throw .invalidPNG(input: input, reason: "missing PNG signature (\(bytes.count) bytes of some other format)")
        }
        guard bytes.count >= 8 + 8 + 13 else {
            throw .invalidPNG(input: input, reason: "truncated before the end of the IHDR header")
        }
        guard bigEndian32(bytes, at: 8) == 13, chunkType(bytes, at: 12) == "IHDR" else {
            throw .invalidPNG(input: input, reason: "the first chunk is not a 13-byte IHDR")
        }
        let header = Header(
            width: Int(bigEndian32(bytes, at: 16)), height: Int(bigEndian32(bytes, at: 20)),
            bitDepth: Int(bytes[24]), colorType: Int(bytes[25]), interlaced: bytes[28] != 0)
        guard header.width > 0, header.height > 0, header.width <= Int(Int32.max), header.height <= Int(Int32.max) else {
            throw .invalidPNG(input: input, reason: "IHDR declares an invalid size \(header.width)x\(header.height)")
        }
        return header
    }

    /// The stream up to and including IEND, without `ignoredChunks`. Throws on a chunk that runs past
    /// the end of the data (truncation) or a stream that stops before IEND.
    static func withoutIgnoredChunks(_ bytes: [UInt8], input: String) throws(ImageError) -> [UInt8] {
        var out = signature
        out.reserveCapacity(bytes.count)
        var offset = signature.count
        while true {
            guard bytes.count - offset >= 12 else {
                throw .invalidPNG(input: input, reason: "truncated at byte \(offset) of \(bytes.count), before the IEND chunk")
            }
            let length = Int(bigEndian32(bytes, at: offset))
            let type = chunkType(bytes, at: offset + 4)
            guard length <= Int(Int32.max) else {
                throw .invalidPNG(input: input, reason: "chunk '\(type)' at byte \(offset) declares an invalid length \(length)")
            }
            let end = offset + 12 + length
            guard end <= bytes.count else {
                throw .invalidPNG(input: input,
                                  reason: "truncated: chunk '\(type)' at byte \(offset) needs \(length) data bytes, file has \(bytes.count - offset - 12)")
            }
            if !ignoredChunks.contains(type) { out.append(contentsOf: bytes[offset..<end]) }
            if type == "IEND" { return out }
            offset = end
        }
    }

    private static func bigEndian32(_ b: [UInt8], at i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }

    private static func chunkType(_ b: [UInt8], at i: Int) -> String {
        String(decoding: b[i..<(i + 4)].map { (0x20...0x7E).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }
}
