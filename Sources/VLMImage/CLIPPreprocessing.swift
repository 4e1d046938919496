/// CLIP's inference-time image transform, identical to open_clip's
/// `image_transform(imageSize, is_train=False, mean, std, resize_mode, interpolation)` applied to
/// `Image.open(path).convert("RGB")`:
///
///     shortest: torchvision Resize(S)        -> CenterCrop(S) -> ToTensor -> Normalize   (the default)
///     longest:  ResizeKeepRatio(S, longest)  -> CenterCropOrPad(S, fill) -> ToTensor -> Normalize
///     squash:   Resize((S, S))               -> ToTensor -> Normalize
///
/// Resizing is Pillow's (bit-exact, see `PillowResample.swift`), so the uint8 image before ToTensor is
/// identical to the reference and the float output matches to the last bit (checked on every shared
/// photo and variant at 224, and in all three modes with both filters at 64).
///
/// The reference is defined on an image already converted to RGB, as the decoder here delivers it.
/// Feeding open_clip's transform the raw `Image.open(path)` instead gives the same result for RGB, L,
/// I;16 and opaque RGBA files, but not for palette files (Pillow resizes mode P with NEAREST; measured
/// max difference 0.80 on chelsea_palette.png) nor gray+alpha (resized premultiplied; max 0.12).
/// Converting first is the better-defined behaviour and is what this type reproduces.
public struct CLIPPreprocessing: Sendable {
    public enum ResizeMode: String, Sendable, CaseIterable {
        /// Shortest side to S keeping the aspect ratio, then centre crop (open_clip's default).
        case shortest
        /// Longest side to S keeping the aspect ratio, then pad to S x S with `fill`.
        case longest
        /// Both sides to S, ignoring the aspect ratio.
        case squash
    }

    /// OpenAI CLIP's normalisation constants (open_clip's OPENAI_DATASET_MEAN / _STD).
    public static let openAIMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public static let openAIStd: [Float] = [0.26862954, 0.26130258, 0.27577711]

    /// Largest accepted `imageSize`: CLIP models use 224-448; this only stops absurd configurations.
    public static let maxImageSize = 4096

    public let imageSize: Int
    public let mean: [Float]
    public let std: [Float]
    public let interpolation: ResampleFilter
    public let resizeMode: ResizeMode
    /// Padding colour for `.longest` (open_clip's `fill_color`, 0 by default).
    public let fill: UInt8

    /// The default arguments are open_clip's defaults for OpenAI-pretrained models. Throws on a
    /// configuration that cannot work (the values typically come from a model's config file).
    public init(imageSize: Int = 224, mean: [Float] = openAIMean, std: [Float] = openAIStd,
                interpolation: ResampleFilter = .bicubic, resizeMode: ResizeMode = .shortest, fill: UInt8 = 0) throws(ImageError) {
        guard (1...Self.maxImageSize).contains(imageSize) else {
            throw .invalidArgument("preprocessing: image size \(imageSize) is outside 1...\(Self.maxImageSize)")
        }
        guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 != 0 && $0.isFinite }), mean.allSatisfy(\.isFinite) else {
            throw .invalidArgument("preprocessing: mean \(mean) and std \(std) need 3 finite values each, std non-zero")
        }
        self.imageSize = imageSize
        self.mean = mean
        self.std = std
        self.interpolation = interpolation
        self.resizeMode = resizeMode
        self.fill = fill
    }

    /// The normalised CHW tensor, `3 * imageSize * imageSize` floats.
    public func callAsFunction(_ image: RGBImage) -> [Float] {
        normalizedCHW(geometry(image))
    }

    /// Several images as one NCHW batch, `images.count * 3 * imageSize * imageSize` floats.
    public func batch(_ images: [RGBImage]) -> [Float] {
        var out = [Float]()
        out.reserveCapacity(images.count * 3 * imageSize * imageSize)
        for image in images { out.append(contentsOf: self(image)) }
        return out
    }

    /// The resize / crop / pad steps: the uint8 image the reference feeds to ToTensor.
    public func geometry(_ image: RGBImage) -> RGBImage {
        let s = imageSize
        let size = Self.resizedSize(width: image.width, height: image.height, target: s, mode: resizeMode)
        let x = AxisPlacement(resized: size.width, target: s)
        let y = AxisPlacement(resized: size.height, target: s)
        // Only the part of the resized image that survives the crop is computed (identical values).
        let window: RGBImage
        if size.width == image.width && size.height == image.height {
            // torchvision's Resize returns the image untouched when the size is unchanged.
            window = try! image.cropped(x: x.source.lowerBound, y: y.source.lowerBound,
                                        width: x.source.count, height: y.source.count)
        } else {
            window = image.resizedWindow(width: size.width, height: size.height, columns: x.source, rows: y.source,
                                         filter: interpolation)
        }
        if window.width == s && window.height == s { return window }
        var canvas = RGBImage(unchecked: s, height: s, fill: (fill, fill, fill))
        for row in 0..<window.height {
            let src = row * window.width * 3
            let dst = ((row + y.offset) * s + x.offset) * 3
            canvas.pixels.replaceSubrange(dst..<(dst + window.width * 3), with: window.pixels[src..<(src + window.width * 3)])
        }
        return canvas
    }

    /// The image size after the resize step (before the crop or pad) for a `width` x `height` input.
    public static func resizedSize(width: Int, height: Int, target: Int, mode: ResizeMode) -> (width: Int, height: Int) {
        switch mode {
        case .shortest: shortestSideSize(width: width, height: height, target: target)
        case .longest: longestSideSize(width: width, height: height, target: target)
        case .squash: (target, target)
        }
    }

    /// Where the `target`-long input starts along one axis of the resized image: the crop's start
    /// (≥ 0), or minus the padding before the image when it is shorter than the target.
    public static func inputOffset(resized: Int, target: Int) -> Int {
        let placement = AxisPlacement(resized: resized, target: target)
        return resized > target ? placement.source.lowerBound : -placement.offset
    }

    /// torchvision's center_crop / open_clip's center_crop_or_pad along one axis of length `resized`:
    /// shorter than the target, it is padded (the extra pixel of an odd padding going right/bottom) and
    /// placed at `offset`; longer, the window starting at `round((resized - target) / 2)` (Python's
    /// round-half-to-even) is kept.
    struct AxisPlacement {
        let source: Range<Int>
        let offset: Int

        init(resized: Int, target: Int) {
            if resized <= target {
                source = 0..<resized
                offset = (target - resized) / 2
            } else {
                let start = Int((Double(resized - target) / 2.0).rounded(.toNearestOrEven))
                source = start..<(start + target)
                offset = 0
            }
        }
    }

    /// torchvision `Resize(int)`: short side to `target`, long side `int(target * long / short)` (truncated).
    static func shortestSideSize(width: Int, height: Int, target: Int) -> (width: Int, height: Int) {
        let (short, long) = width <= height ? (width, height) : (height, width)
        let newLong = Int(Double(target) * Double(long) / Double(short))
        return width <= height ? (target, newLong) : (newLong, target)
    }

    /// open_clip's ResizeKeepRatio with longest=1: ratio = max(h/S, w/S), each side `round(side / ratio)`
    /// with Python's round-half-to-even. A side that would round to 0 (aspect beyond 2S:1, where the
    /// reference fails) is kept at 1 pixel.
    static func longestSideSize(width: Int, height: Int, target: Int) -> (width: Int, height: Int) {
        let ratio = max(Double(height) / Double(target), Double(width) / Double(target))
        func side(_ x: Int) -> Int { max(1, Int((Double(x) / ratio).rounded(.toNearestOrEven))) }
        return (side(width), side(height))
    }

    /// ToTensor then Normalize, in float32 with the reference's operation order: `(v / 255 - mean) / std`.
    private func normalizedCHW(_ image: RGBImage) -> [Float] {
        let plane = image.width * image.height
        var out = [Float](repeating: 0, count: 3 * plane)
        for c in 0..<3 {
            let m = mean[c], sd = std[c]
            for p in 0..<plane {
                out[c * plane + p] = (Float(image.pixels[p * 3 + c]) / 255 - m) / sd
            }
        }
        return out
    }
}
