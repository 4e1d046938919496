// How a heatmap is laid out so a person can read it without the JSON beside it: the text it is for
// on top, the photo (enlarged when small) with the map blended over what the tower saw, the selected
// cells outlined one by one, the area outside the tower's centre crop hatched, and a legend with the
// colour scale underneath.
import Foundation
import VLMImage

/// An RGB pixel buffer with clipped rectangle fills.
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int, colour: (UInt8, UInt8, UInt8)) {
        self.width = width; self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        fill(x: 0, y: 0, width: width, height: height, colour: colour)
    }

    mutating func fill(x: Int, y: Int, width w: Int, height h: Int, colour: (UInt8, UInt8, UInt8)) {
        for row in max(0, y)..<max(max(0, y), min(height, y + h)) {
            for column in max(0, x)..<max(max(0, x), min(width, x + w)) {
                let i = (row * width + column) * 3
                pixels[i] = colour.0; pixels[i + 1] = colour.1; pixels[i + 2] = colour.2
            }
        }
    }

    /// A rectangle's border, `thickness` pixels wide, inside the rectangle.
    mutating func outline(x: Int, y: Int, width w: Int, height h: Int, thickness t: Int, colour: (UInt8, UInt8, UInt8)) {
        let t = max(1, min(t, w / 2, h / 2))
        fill(x: x, y: y, width: w, height: t, colour: colour)
        fill(x: x, y: y + h - t, width: w, height: t, colour: colour)
        fill(x: x, y: y, width: t, height: h, colour: colour)
        fill(x: x + w - t, y: y, width: t, height: h, colour: colour)
    }

    /// Pastes `image` with its top-left corner at (x, y).
    mutating func paste(_ image: RGBImage, x: Int, y: Int) {
        for row in 0..<image.height where (0..<height).contains(y + row) {
            let source = row * image.width * 3, target = ((y + row) * width + x) * 3
            pixels.replaceSubrange(target..<target + image.width * 3, with: image.pixels[source..<source + image.width * 3])
        }
    }

    func image() throws -> RGBImage { try RGBImage(width: width, height: height, pixels: pixels) }
}

enum HeatmapDrawing {
    static let background: (UInt8, UInt8, UInt8) = (28, 28, 32)
    static let white: (UInt8, UInt8, UInt8) = (255, 255, 255)
    static let black: (UInt8, UInt8, UInt8) = (0, 0, 0)
    static let grey: (UInt8, UInt8, UInt8) = (170, 170, 170)
    /// Small images are enlarged (nearest neighbour, so their pixels stay visible) to about this side.
    static let targetSide = 384

    /// The finished heatmap. `visible` is the part of `image` the tower saw, `cells` the selected grid
    /// cells in original pixels, `peak` the largest score (the top of the colour scale).
    static func draw(_ image: RGBImage, scores: [Float], gridWidth: Int, gridHeight: Int, visible: PixelBox,
                     cells: [PixelBox], selectionNote: String?, caption: String, alpha: Float) throws -> RGBImage {
        let zoom = zoom(for: image)
        let peak = scores.max() ?? 0
        let scaled = peak > 0 ? scores.map { $0 / peak } : scores
        let photo = try enlarged(image, by: zoom)
        let seen = PixelBox(x: visible.x * zoom, y: visible.y * zoom, width: visible.width * zoom, height: visible.height * zoom)
        let window = try photo.cropped(x: seen.x, y: seen.y, width: seen.width, height: seen.height)
        let heat = try HeatmapOverlay.overlay(on: window, scores: scaled, gridWidth: gridWidth, gridHeight: gridHeight, alpha: alpha)

        let fontScale = max(1, min(3, photo.width / 190))
        let pad = 3 * fontScale
        let columns = max(8, (photo.width - 2 * pad) / (BitmapFont.advance * fontScale))
        let captionLines = BitmapFont.wrap(caption, columns: columns)
        let lineHeight = BitmapFont.lineHeight * fontScale
        let header = captionLines.count * lineHeight + 2 * pad
        let hidden = seen != PixelBox(x: 0, y: 0, width: photo.width, height: photo.height)
        let legendLines = 2 + (selectionNote == nil ? 0 : 1) + (hidden ? 1 : 0)
        let footer = legendLines * (lineHeight + pad) + 2 * pad

        var canvas = Canvas(width: photo.width, height: header + photo.height + footer, colour: background)
        for (index, line) in captionLines.enumerated() {
            BitmapFont.draw(line, x: pad, y: pad + index * lineHeight, scale: fontScale, colour: white, on: &canvas)
        }
        canvas.paste(photo, x: 0, y: header)
        if hidden { shadeOutside(seen, photo: (photo.width, photo.height), top: header, on: &canvas, fontScale: fontScale) }
        canvas.paste(heat, x: seen.x, y: header + seen.y)
        for cell in cells {
            let box = PixelBox(x: cell.x * zoom, y: header + cell.y * zoom, width: cell.width * zoom, height: cell.height * zoom)
            canvas.outline(x: box.x, y: box.y, width: box.width, height: box.height, thickness: 3, colour: black)
            canvas.outline(x: box.x + 1, y: box.y + 1, width: box.width - 2, height: box.height - 2, thickness: 1, colour: white)
        }
        drawLegend(on: &canvas, top: header + photo.height + pad, peak: peak, selectionNote: selectionNote, hidden: hidden,
                   fontScale: fontScale, pad: pad)
        return try canvas.image()
    }

    /// The whole factor a small image is enlarged by (at most 8; 1 for images of `targetSide` or more).
    static func zoom(for image: RGBImage) -> Int { max(1, min(8, targetSide / max(image.width, image.height))) }

    /// Each pixel repeated `zoom` x `zoom` times.
    static func enlarged(_ image: RGBImage, by zoom: Int) throws -> RGBImage {
        guard zoom > 1 else { return image }
        let width = image.width * zoom
        var pixels = [UInt8](repeating: 0, count: width * image.height * zoom * 3)
        for y in 0..<image.height * zoom {
            for x in 0..<width {
                let source = ((y / zoom) * image.width + x / zoom) * 3, target = (y * width + x) * 3
                pixels[target] = image.pixels[source]; pixels[target + 1] = image.pixels[source + 1]
                pixels[target + 2] = image.pixels[source + 2]
            }
        }
        return try RGBImage(width: width, height: image.height * zoom, pixels: pixels)
    }

    /// Darkens and hatches the photo (`photo`, its rows starting at `top`) outside `seen`, and labels
    /// the largest such strip when the label fits there.
    static func shadeOutside(_ seen: PixelBox, photo: (width: Int, height: Int), top: Int, on canvas: inout Canvas, fontScale: Int) {
        for row in 0..<photo.height {
            for x in 0..<photo.width where !(x >= seen.x && x < seen.x + seen.width && row >= seen.y && row < seen.y + seen.height) {
                let i = ((top + row) * canvas.width + x) * 3
                let stripe = (x + row) % 10 < 2
                for c in 0..<3 { canvas.pixels[i + c] = stripe ? 150 : UInt8(Int(canvas.pixels[i + c]) * 30 / 100) }
            }
        }
        let label = "outside crop"
        let strips = [PixelBox(x: 0, y: 0, width: seen.x, height: photo.height),
                      PixelBox(x: seen.x + seen.width, y: 0, width: photo.width - seen.x - seen.width, height: photo.height),
                      PixelBox(x: 0, y: 0, width: photo.width, height: seen.y),
                      PixelBox(x: 0, y: seen.y + seen.height, width: photo.width, height: photo.height - seen.y - seen.height)]
        // The largest font scale (up to the legend's) at which the label fits in some strip.
        var placed: (strip: PixelBox, scale: Int)?
        for scale in stride(from: fontScale, through: 1, by: -1) where placed == nil {
            let fitting = strips.filter { $0.width >= BitmapFont.width(of: label, scale: scale) + 4 && $0.height >= BitmapFont.glyphHeight * scale + 4 }
            placed = fitting.max(by: { $0.width * $0.height < $1.width * $1.height }).map { ($0, scale) }
        }
        guard let (strip, scale) = placed else { return }
        let textWidth = BitmapFont.width(of: label, scale: scale), textHeight = BitmapFont.glyphHeight * scale
        let x = strip.x + (strip.width - textWidth) / 2, y = top + strip.y + (strip.height - textHeight) / 2
        canvas.fill(x: x - 2, y: y - 2, width: textWidth + 4, height: textHeight + 4, colour: background)
        BitmapFont.draw(label, x: x, y: y, scale: scale, colour: white, on: &canvas)
    }

    /// The colour scale from 0 to the peak share, what the outlines mean, and what the hatching means.
    static func drawLegend(on canvas: inout Canvas, top: Int, peak: Float, selectionNote: String?, hidden: Bool,
                           fontScale: Int, pad: Int) {
        let lineHeight = BitmapFont.lineHeight * fontScale
        let low = "0%", high = String(format: "%.1f%%", peak * 100)
        let barLeft = pad + BitmapFont.width(of: low, scale: fontScale) + pad
        let barRight = canvas.width - pad - BitmapFont.width(of: high, scale: fontScale) - pad
        let barHeight = BitmapFont.glyphHeight * fontScale
        BitmapFont.draw(low, x: pad, y: top, scale: fontScale, colour: white, on: &canvas)
        for x in barLeft..<max(barLeft, barRight) {
            let colour = HeatmapOverlay.jet(Float(x - barLeft) / Float(max(1, barRight - barLeft - 1)))
            canvas.fill(x: x, y: top, width: 1, height: barHeight, colour: colour)
        }
        BitmapFont.draw(high, x: barRight + pad, y: top, scale: fontScale, colour: white, on: &canvas)
        var y = top + lineHeight + pad
        drawFitted("colour: share of map per cell", x: pad, y: y, scale: fontScale, colour: grey, on: &canvas)
        let swatch = BitmapFont.glyphHeight * fontScale
        if let selectionNote {
            y += lineHeight + pad
            canvas.outline(x: pad, y: y, width: swatch, height: swatch, thickness: 3, colour: black)
            canvas.outline(x: pad + 1, y: y + 1, width: swatch - 2, height: swatch - 2, thickness: 1, colour: white)
            drawFitted(selectionNote, x: pad + swatch + pad, y: y, scale: fontScale, colour: white, on: &canvas)
        }
        if hidden {
            y += lineHeight + pad
            for dy in 0..<swatch {
                for dx in 0..<swatch {
                    canvas.fill(x: pad + dx, y: y + dy, width: 1, height: 1, colour: (dx + dy) % 10 < 2 ? (150, 150, 150) : (20, 20, 20))
                }
            }
            drawFitted("outside the model's crop", x: pad + swatch + pad, y: y, scale: fontScale, colour: white, on: &canvas)
        }
    }

    /// One legend line at `scale`, or smaller when it would not fit the canvas width.
    static func drawFitted(_ text: String, x: Int, y: Int, scale: Int, colour: (UInt8, UInt8, UInt8), on canvas: inout Canvas) {
        let fitting = stride(from: scale, through: 1, by: -1).first { x + BitmapFont.width(of: text, scale: $0) <= canvas.width - 2 } ?? 1
        BitmapFont.draw(text, x: x, y: y, scale: fitting, colour: colour, on: &canvas)
    }
}
