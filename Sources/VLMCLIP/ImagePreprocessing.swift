import Foundation
import VLMImage

extension CLIPModel {
    /// The inference-time image transform this model's config prescribes (open_clip's
    /// `image_transform(..., is_train=False)`): the one place a config becomes a `CLIPPreprocessing`.
    public func imagePreprocessing() throws -> CLIPPreprocessing {
        let p = preprocess
        guard let resize = CLIPPreprocessing.ResizeMode(rawValue: p.resizeMode) else {
            throw CLIPError.invalidConfig(path: Self.configFileName, reason: "unsupported resize_mode \(p.resizeMode)")
        }
        // open_clip's "random" interpolation is a training-time augmentation; inference uses bicubic.
        return try CLIPPreprocessing(imageSize: p.imageSize, mean: p.mean, std: p.std,
                                     interpolation: ResampleFilter(rawValue: p.interpolation) ?? .bicubic,
                                     resizeMode: resize, fill: UInt8(clamping: p.fillColor))
    }
}
