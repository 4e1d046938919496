import Testing
@testable import VLMImage

/// open_clip.image_transform(..., is_train=False) outputs on Pillow-decoded images (preprocess.json).
@Suite struct CLIPPreprocessingTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let image: String, size: Int, mode: String, interpolation: String
        let tensorSHA: String, uint8SHA: String, uint8Width: Int, uint8Height: Int, sum: Double, bin: String?
        var testDescription: String { "\(image) \(size) \(mode) \(interpolation)" }
    }

    static let cases: [Case] = {
        let json = try! Fixtures.json("preprocess.json")
        return (json["cases"] as! [[String: Any]]).map {
            Case(image: $0["image"] as! String, size: $0["size"] as! Int, mode: $0["resize_mode"] as! String,
                 interpolation: $0["interpolation"] as! String, tensorSHA: $0["tensor_sha256"] as! String,
                 uint8SHA: $0["uint8_sha256"] as! String, uint8Width: $0["uint8_width"] as! Int,
                 uint8Height: $0["uint8_height"] as! Int, sum: $0["sum"] as! Double, bin: $0["bin"] as? String)
        }
    }()

    static func load(_ name: String) throws -> RGBImage {
        let path = name.hasPrefix("png/") ? Fixtures.path(name) : Fixtures.sharedImages.appendingPathComponent(name).path
        return try PNGDecoder().decode(contentsOf: path)
    }

    @Test(arguments: cases)
    func matchesOpenCLIP(_ c: Case) throws {
        let transform = try CLIPPreprocessing(imageSize: c.size, interpolation: ResampleFilter(rawValue: c.interpolation)!,
                                          resizeMode: CLIPPreprocessing.ResizeMode(rawValue: c.mode)!)
        let image = try Self.load(c.image)
        let resized = transform.geometry(image)
        #expect(resized.width == c.uint8Width && resized.height == c.uint8Height)
        #expect(SHA256.hex(resized.pixels) == c.uint8SHA, "resized uint8 image differs from Pillow")
        let tensor = transform(image)
        #expect(tensor.count == 3 * c.size * c.size)
        #expect(floatBytesDigest(tensor) == c.tensorSHA, "tensor is not bit-identical to open_clip's")
        let sum = tensor.reduce(0.0) { $0 + Double($1) }
        #expect(abs(sum - c.sum) < 1e-3)
        if let bin = c.bin {
            let expected = try Fixtures.floats(bin)
            let maxDiff = zip(tensor, expected).map { abs($0 - $1) }.max() ?? .infinity
            #expect(maxDiff <= 1e-5, "max abs diff \(maxDiff) against \(bin)")
        }
    }
}

/// Pillow's `Image.resize` itself, on a small random image, to many sizes (resize.json).
@Suite struct PillowResampleTests {
    @Test func matchesPillowForManySizes() throws {
        let json = try Fixtures.json("resize.json")
        let source = try PNGDecoder().decode(contentsOf: Fixtures.path(json["source"] as! String))
        var checked = 0
        for c in json["cases"] as! [[String: Any]] {
            let (w, h) = (c["width"] as! Int, c["height"] as! Int)
            let filter = ResampleFilter(rawValue: c["filter"] as! String)!
            let out = try source.resized(width: w, height: h, filter: filter)
            #expect(SHA256.hex(out.pixels) == c["sha256"] as! String, "\(w)x\(h) \(filter)")
            checked += 1
        }
        #expect(checked >= 100)
    }
}
