import Foundation
import Testing
@testable import VLMImage

/// Decoding is checked against Pillow's `Image.open(p).convert("RGB")` (decode.json).
@Suite struct PNGDecoderTests {
    static let sharedNames: [String] = [
        "astronaut.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "logo.png", "motorcycle_left.png",
        "variants/chelsea_gray16.png", "variants/chelsea_gray_alpha.png", "variants/chelsea_interlaced.png",
        "variants/chelsea_palette.png", "variants/chelsea_rgb16.png",
    ]

    @Test(arguments: sharedNames)
    func sharedImageMatchesPillowBitExactly(name: String) throws {
        let entry = (try Fixtures.json("decode.json")["shared"] as! [String: [String: Any]])[name]!
        let image = try PNGDecoder().decode(contentsOf: Fixtures.sharedImages.appendingPathComponent(name).path)
        #expect(image.width == entry["width"] as! Int)
        #expect(image.height == entry["height"] as! Int)
        #expect(SHA256.hex(image.pixels) == entry["rgb_sha256"] as! String, "\(name) differs from Pillow")
    }

    /// Small crafted files: low bit depths, tRNS, gAMA, 16-bit. All bit-exact except the documented
    /// 16-bit-with-alpha rounding, whose measured deviation must stay at most 1.
    @Test(arguments: ["gray1.png", "gray2.png", "gray4.png", "gray16_trns.png", "gray_trns.png", "palette4_trns.png",
                      "rgb16_random.png", "rgb_gamma10.png", "rgba8.png", "rgba16.png", "gray_alpha16.png", "strip.png"])
    func craftedImageMatchesPillow(name: String) throws {
        let entry = (try Fixtures.json("decode.json")["crafted"] as! [String: [String: Any]])[name]!
        let image = try PNGDecoder().decode(contentsOf: Fixtures.path("png/" + name))
        let expected = Fixtures.hexBytes(entry["rgb_hex"] as! String)
        #expect(image.width == entry["width"] as! Int && image.height == entry["height"] as! Int)
        let maxDiff = zip(image.pixels, expected).map { abs(Int($0) - Int($1)) }.max() ?? 0
        if name.hasSuffix("16.png") && (name.hasPrefix("rgba") || name.hasPrefix("gray_alpha")) {
            // Documented deviation: libpng rounds (v*255/65535) where Pillow truncates (v>>8).
            #expect(maxDiff <= 1, "\(name): max deviation \(maxDiff)")
            let differing = zip(image.pixels, expected).filter { $0 != $1 }.count
            print("\(name): \(differing) of \(expected.count) samples differ from Pillow by \(maxDiff)")
        } else {
            #expect(maxDiff == 0, "\(name): max deviation \(maxDiff) from Pillow")
        }
    }

    @Test func base64InputDecodesLikeTheFile() throws {
        let path = Fixtures.path("png/rgba8.png")
        let base64 = try Data(contentsOf: URL(fileURLWithPath: path)).base64EncodedString()
        #expect(try PNGDecoder().decode(base64: base64) == PNGDecoder().decode(contentsOf: path))
        #expect(try PNGDecoder().decode(base64: "data:image/png;base64," + base64) == PNGDecoder().decode(contentsOf: path))
        #expect(throws: ImageError.self) { try PNGDecoder().decode(base64: "not base64 !!!") }
    }

    /// The hostile file claims 100000x100000 RGB (30 GB). The budget check must fire from the header alone:
    /// the error is `tooLarge`, not a libpng failure, so nothing was decoded or allocated.
    @Test func hostileHeaderIsRefusedBeforeDecoding() throws {
        let path = Fixtures.path("png/hostile_huge.png")
        #expect(throws: ImageError.tooLarge(input: path, width: 100_000, height: 100_000, budget: PNGDecoder.defaultPixelBudget)) {
            try PNGDecoder().decode(contentsOf: path)
        }
        // A configurable budget: a small image refused under a tighter limit.
        #expect(throws: ImageError.tooLarge(input: "tiny budget", width: 19, height: 13, budget: 100)) {
            try PNGDecoder(pixelBudget: 100).decode(Fixtures.bytes("png/rgba8.png"), input: "tiny budget")
        }
        // With a budget large enough the header passes, and libpng then fails on the missing pixel data
        // of a 100000-pixel-wide image... but only if it were allowed to allocate; keep the check cheap.
    }

    @Test func truncatedFileGivesErrorNamingTheInput() throws {
        let bytes = try [UInt8](Data(contentsOf: Fixtures.sharedImages.appendingPathComponent("chelsea.png")))
        for cut in [4, 20, 40, bytes.count / 2, bytes.count - 5] {
            do {
                _ = try PNGDecoder().decode(Array(bytes[0..<cut]), input: "chelsea-cut-\(cut)")
                Issue.record("truncated at \(cut) decoded")
            } catch {
                #expect(error.description.contains("chelsea-cut-\(cut)"), "\(error)")
            }
        }
    }

    @Test func nonPNGBytesAreRejected() {
        #expect(throws: ImageError.self) { try PNGDecoder().decode(Array("hello, world".utf8), input: "greeting") }
        #expect(throws: ImageError.self) { try PNGDecoder().decode([], input: "empty") }
        do { _ = try PNGDecoder().decode(Array("GIF89a...".utf8), input: "a.gif") } catch {
            #expect(error.description.hasPrefix("a.gif: not a valid PNG image"))
        }
        #expect(throws: ImageError.self) { try PNGDecoder().decode(contentsOf: "/nonexistent/file.png") }
    }

    /// Damaged compressed data inside an otherwise well-formed stream: libpng's error arrives as a thrown
    /// Swift error (the simplified API never longjmps through our frames).
    @Test func corruptPixelDataIsReportedByLibpng() throws {
        var bytes = try Fixtures.bytes("png/rgb_gamma10.png")
        // Overwrite bytes in the middle of the IDAT payload (the last chunks are IDAT then IEND).
        let idat = bytes.count - 12 - 12 - 60
        for i in idat..<(idat + 40) { bytes[i] ^= 0x5A }
        do {
            _ = try PNGDecoder().decode(bytes, input: "corrupt.png")
            Issue.record("corrupt data decoded")
        } catch {
            #expect(error.description.contains("corrupt.png"))
            #expect(error.description.contains("libpng"), "\(error)")
        }
    }
}
