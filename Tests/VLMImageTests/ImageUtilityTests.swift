import Testing
@testable import VLMImage

@Suite struct ImageUtilityTests {
    static func gradient(width: Int, height: Int) -> RGBImage {
        var pixels = [UInt8]()
        for y in 0..<height {
            for x in 0..<width { pixels += [UInt8(x * 7 % 256), UInt8(y * 11 % 256), UInt8((x * y) % 256)] }
        }
        return try! RGBImage(width: width, height: height, pixels: pixels)
    }

    @Test func encodeDecodeRoundTripRGB() throws {
        for (w, h) in [(1, 1), (37, 23), (256, 3)] {
            let image = Self.gradient(width: w, height: h)
            #expect(try PNGDecoder().decode(PNGEncoder.encode(image)) == image)
        }
        let photo = try PNGDecoder().decode(contentsOf: Fixtures.sharedImages.appendingPathComponent("chelsea.png").path)
        #expect(try PNGDecoder().decode(PNGEncoder.encode(photo)) == photo)
    }

    @Test func encodeRGBAKeepsColourUnderTransparency() throws {
        let rgba: [UInt8] = [10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255, 1, 2, 3, 4]
        let png = try PNGEncoder.encodeRGBA(pixels: rgba, width: 2, height: 2)
        // Decoding drops alpha without compositing, like Pillow.
        #expect(try PNGDecoder().decode(png).pixels == [10, 20, 30, 40, 50, 60, 70, 80, 90, 1, 2, 3])
        #expect(throws: ImageError.self) { try PNGEncoder.encodeRGBA(pixels: rgba, width: 3, height: 2) }
    }

    @Test func cropClampsAndValidates() throws {
        let image = Self.gradient(width: 10, height: 8)
        let inner = try image.cropped(x: 2, y: 3, width: 4, height: 2)
        #expect(inner.width == 4 && inner.height == 2)
        #expect(inner[0, 0] == image[2, 3] && inner[3, 1] == image[5, 4])
        let clamped = try image.cropped(x: -5, y: 6, width: 100, height: Int.max)
        #expect(clamped.width == 10 && clamped.height == 2 && clamped[0, 0] == image[0, 6])
        #expect(throws: ImageError.self) { try image.cropped(x: 10, y: 0, width: 1, height: 1) }
        #expect(throws: ImageError.self) { try image.cropped(x: 0, y: 0, width: 0, height: 1) }
        #expect(throws: ImageError.self) { try image.cropped(x: -3, y: 0, width: 3, height: 1) }
    }

    @Test func contentDigestDependsOnPixelsAndShape() throws {
        let a = try RGBImage(width: 2, height: 3, fill: (1, 2, 3))
        let b = try RGBImage(width: 3, height: 2, fill: (1, 2, 3))
        #expect(a.contentDigest != b.contentDigest)
        #expect(try a.contentDigest == RGBImage(width: 2, height: 3, pixels: a.pixels).contentDigest)
        #expect(throws: ImageError.self) { try RGBImage(width: 2, height: 3, pixels: [1, 2, 3]) }
        #expect(throws: ImageError.self) { try RGBImage(width: Int.max, height: 2, pixels: []) }
        #expect(throws: ImageError.self) { try RGBImage(width: -1, height: 2, fill: (0, 0, 0)) }
        // Definition: SHA-256 of width and height (UInt64 big-endian) then the pixels.
        #expect(a.contentDigest == SHA256.hex([0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3] + a.pixels))
    }

    @Test func jetColourMapEndpoints() {
        #expect(HeatmapOverlay.jet(0) == (0, 0, 128))
        #expect(HeatmapOverlay.jet(0.5) == (128, 255, 128))
        #expect(HeatmapOverlay.jet(1) == (128, 0, 0))
        #expect(HeatmapOverlay.jet(-3) == HeatmapOverlay.jet(0) && HeatmapOverlay.jet(.nan) == HeatmapOverlay.jet(0))
    }

    @Test func heatmapOverlayBlendsAndUpsamples() throws {
        let image = try RGBImage(width: 8, height: 4, fill: (200, 100, 50))
        // alpha 0 leaves the image unchanged; alpha 1 with a constant grid paints one colour.
        #expect(try HeatmapOverlay.overlay(on: image, scores: [0.3, 0.3], gridWidth: 2, gridHeight: 1, alpha: 0) == image)
        let solid = try HeatmapOverlay.overlay(on: image, scores: [1, 1, 1, 1], gridWidth: 2, gridHeight: 2, alpha: 1)
        #expect(try solid == RGBImage(width: 8, height: 4, fill: HeatmapOverlay.jet(1)))
        // A 1x2 grid [0, 1] becomes a left-to-right ramp: constant at the outer quarter-cells, monotone between.
        let ramp = try HeatmapOverlay.overlay(on: image, scores: [0, 1], gridWidth: 2, gridHeight: 1, alpha: 1)
        #expect(ramp[0, 0] == HeatmapOverlay.jet(0) && ramp[1, 2] == HeatmapOverlay.jet(0))
        #expect(ramp[7, 3] == HeatmapOverlay.jet(1) && ramp[6, 0] == HeatmapOverlay.jet(1))
        #expect(ramp[3, 0] == HeatmapOverlay.jet(0.375) && ramp[4, 0] == HeatmapOverlay.jet(0.625))
        // Half blend.
        let half = try HeatmapOverlay.overlay(on: image, scores: [0], gridWidth: 1, gridHeight: 1, alpha: 0.5)
        #expect(half[0, 0] == (100, 50, 89))
        #expect(throws: ImageError.self) { try HeatmapOverlay.overlay(on: image, scores: [0, 1, 2], gridWidth: 2, gridHeight: 2) }
        #expect(throws: ImageError.self) { try HeatmapOverlay.overlay(on: image, scores: [0], gridWidth: 1, gridHeight: 1, alpha: 2) }
    }

    /// A window of a resize equals the same crop of the full resize, for both filters, up and down.
    @Test func resizedWindowEqualsCroppedFullResize() throws {
        let image = Self.gradient(width: 41, height: 29)
        for filter in ResampleFilter.allCases {
            for (w, h) in [(17, 11), (90, 13), (41, 60), (7, 29)] {
                let full = try image.resized(width: w, height: h, filter: filter)
                for (cols, rows) in [(0..<w, 0..<h), (1..<(w - 2), 3..<(h - 1)), ((w - 1)..<w, 0..<1)] {
                    let window = image.resizedWindow(width: w, height: h, columns: cols, rows: rows, filter: filter)
                    let crop = try full.cropped(x: cols.lowerBound, y: rows.lowerBound, width: cols.count, height: rows.count)
                    #expect(window == crop, "\(filter) \(w)x\(h) window \(cols) x \(rows)")
                }
            }
        }
    }

    /// Extreme aspect ratios: shortest-side resizing of a 1x20000 strip would be 224x4480000 in full;
    /// only the crop is computed. Longest-side resizing of a 1000x1 strip keeps the short side at 1 pixel
    /// (the reference fails there: it asks Pillow for a 0-pixel side).
    @Test func extremeAspectRatiosStayCheap() throws {
        // Resized in full, the strip would be 3 × 224 × 4,480,000 floats (12 GB): a test run cannot afford it.
        let tall = Self.gradient(width: 1, height: 20000)
        let tensor = try CLIPPreprocessing()(tall)
        #expect(tensor.count == 3 * 224 * 224)
        let wide = try CLIPPreprocessing(imageSize: 64, resizeMode: .longest).geometry(Self.gradient(width: 1000, height: 1))
        #expect(wide.width == 64 && wide.height == 64)
        // Row 31 holds the image (padding puts (64 - 1) / 2 rows above it); the rest is the fill colour.
        #expect(wide[0, 0] == (0, 0, 0) && wide[0, 63] == (0, 0, 0))
        let batch = try CLIPPreprocessing(imageSize: 16).batch([tall, Self.gradient(width: 5, height: 7)])
        #expect(batch.count == 2 * 3 * 16 * 16)
        #expect(Array(batch[0..<(3 * 16 * 16)]) == (try CLIPPreprocessing(imageSize: 16))(tall))
    }

    @Test func resizeIdentityAndUpscaleProperties() throws {
        let image = Self.gradient(width: 9, height: 5)
        // Pillow skips a pass whose dimension is unchanged; a same-size resize is therefore the identity.
        #expect(try image.resized(width: 9, height: 5, filter: .bicubic) == image)
        #expect(throws: ImageError.self) { try image.resized(width: 0, height: 5, filter: .bicubic) }
        let flat = try RGBImage(width: 7, height: 3, fill: (9, 99, 199))
        // Normalised weights keep a flat image flat in every direction and filter.
        for filter in ResampleFilter.allCases {
            #expect(try flat.resized(width: 20, height: 2, filter: filter) == RGBImage(width: 20, height: 2, fill: (9, 99, 199)))
        }
    }
}

@Test func preprocessingRejectsBadConfigurations() {
    #expect(throws: ImageError.self) { try CLIPPreprocessing(imageSize: 0) }
    #expect(throws: ImageError.self) { try CLIPPreprocessing(imageSize: 1 << 20) }
    #expect(throws: ImageError.self) { try CLIPPreprocessing(mean: [0.5, 0.5]) }
    #expect(throws: ImageError.self) { try CLIPPreprocessing(std: [1, 0, 1]) }
}
