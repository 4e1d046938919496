/// CLIP's inference-time image transform, identical to open_clip's
/// `image_transform(imageSize, is_train=False, mean, std, resize_mode, interpolation)` applied to
/// `Image.open(path).convert("RGB")`:
///
///     shortest: torchvision Resize(S)        -> CenterCrop(S) -> ToTensor -> Normalize   (the default)
///     longest:  ResizeKeepRatio(S, longest)  -> CenterCropOrPad(S, fill) -> ToTensor -> Normalize
///     squash:   Resize((S, S))               -> ToTensor -> Normalize
///
/// Resizing is Pillow's (bit-exact, see `PillowResample.swift`), so the uint8 image before ToTensor is
/// identical to the reference and the float output matches to the last bit.
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

    public var imageSize: Int
    public var mean: [Float]
    public var std: [Float]
    public var interpolation: ResampleFilter
    public var resizeMode: ResizeMode
    /// Padding colour for `.longest` (open_clip's `fill_color`, 0 by default).
    public var fill: UInt8

    public init(imageSize: Int = 224, mean: [Float] = openAIMean, std: [Float] = openAIStd,
                interpolation: ResampleFilter = .bicubic, resizeMode: ResizeMode = .shortest, fill: UInt8 = 0) {
        precondition(imageSize > 0 && mean.count == 3 && std.count == 3, "CLIPPreprocessing: bad configuration")
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

    /// The resize / crop / pad steps: the uint8 image the reference feeds to ToTensor.
    public func geometry(_ image: RGBImage) -> RGBImage {
        let s = imageSize
        switch resizeMode {
        case .shortest:
            let (w, h) = Self.shortestSideSize(width: image.width, height: image.height, target: s)
            return centerCropOrPad(resize(image, width: w, height: h))
        case .longest:
            let (w, h) = Self.longestSideSize(width: image.width, height: image.height, target: s)
            return centerCropOrPad(resize(image, width: w, height: h))
        case .squash:
            return resize(image, width: s, height: s)
        }
    }

    /// torchvision's Resize: no resampling at all when the size is unchanged.
    private func resize(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        if width == image.width && height == image.height { return image }
        return image.resized(width: width, height: height, filter: interpolation)
    }

    /// torchvision `Resize(int)`: short side to `target`, long side `int(target * long / short)` (truncated).
    static func shortestSideSize(width: Int, height: Int, target: Int) -> (width: Int, height: Int) {
        let (short, long) = width <= height ? (width, height) : (height, width)
        let newLong = Int(Double(target * long) / Double(short))
        return width <= height ? (target, newLong) : (newLong, target)
    }

    /// open_clip's ResizeKeepRatio with longest=1: ratio = max(h/S, w/S), each side `round(side / ratio)`
    /// with Python's round-half-to-even.
    static func longestSideSize(width: Int, height: Int, target: Int) -> (width: Int, height: Int) {
        let ratio = max(Double(height) / Double(target), Double(width) / Double(target))
        func side(_ x: Int) -> Int { Int((Double(x) / ratio).rounded(.toNearestOrEven)) }
        return (side(width), side(height))
    }

    /// torchvision's center_crop (and open_clip's center_crop_or_pad): pad with `fill` where the image is
    /// smaller than S (the extra pixel of an odd padding goes right/bottom), then crop at
    /// `round((size - S) / 2)` with round-half-to-even.
    private func centerCropOrPad(_ image: RGBImage) -> RGBImage {
        let s = imageSize
        var img = image
        if image.width < s || image.height < s {
            let left = max(0, (s - image.width) / 2), top = max(0, (s - image.height) / 2)
            let newW = max(s, image.width), newH = max(s, image.height)
            var padded = RGBImage(width: newW, height: newH, fill: (fill, fill, fill))
            for y in 0..<image.height {
                let src = y * image.width * 3
                let dst = ((y + top) * newW + left) * 3
                padded.pixels.replaceSubrange(dst..<(dst + image.width * 3), with: image.pixels[src..<(src + image.width * 3)])
            }
            img = padded
        }
        if img.width == s && img.height == s { return img }
        let top = Int((Double(img.height - s) / 2.0).rounded(.toNearestOrEven))
        let left = Int((Double(img.width - s) / 2.0).rounded(.toNearestOrEven))
        // In bounds by construction, so this cannot throw.
        return try! img.cropped(x: left, y: top, width: s, height: s)
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
