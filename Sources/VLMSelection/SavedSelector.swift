import Foundation
import VLMImage
import VLMTensor

/// A trained selection head with the identity of the CLIP model whose features it was trained on.
///
/// File layout: a safetensors file with tensors "bilinear" (F32 [D, D]) and "log_scale" (F32 [1]);
/// `__metadata__` holds format/version, `clip_identity` (the SHA-256 of the CLIP weights file),
/// `clip_name` (informative only), `crop_grid`, `resolution` (0: the model's image size) and the
/// training configuration and figures as JSON.
public struct SavedSelector: Sendable {
    public var head: SelectionHead
    public var clipIdentity: String
    public var clipName: String
    /// 0: the head scores the model's dense cells; G: the pooled embeddings of a G×G grid of crops.
    public var cropGrid: Int
    /// The side the tower sees an image at for the dense cells the head scores; 0: the model's own.
    public var resolution: Int
    /// Free-form JSON text (the configuration and the training figures), kept as written.
    public var details: String

    public init(head: SelectionHead, clipIdentity: String, clipName: String, cropGrid: Int, resolution: Int = 0, details: String) {
        (self.head, self.clipIdentity, self.clipName, self.cropGrid, self.details) = (head, clipIdentity, clipName, cropGrid, details)
        self.resolution = resolution
    }

    static let formatName = "vlmd-selector"
    static let formatVersion = "1"

    public func save(to url: URL) throws {
        let metadata = ["format": Self.formatName, "version": Self.formatVersion, "clip_identity": clipIdentity,
                        "clip_name": clipName, "crop_grid": String(cropGrid), "resolution": String(resolution),
                        "details": details]
        try SafeTensorsWriter.write([("bilinear", [head.width, head.width], head.bilinear), ("log_scale", [1], [head.logScale])],
                                    metadata: metadata, to: url)
    }

    public static func load(from url: URL) throws(SelectionError) -> SavedSelector {
        func invalid(_ reason: String) -> SelectionError { .invalidFile(path: url.path, reason: reason) }
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(url: url) } catch { throw invalid("\(error)") }
        let metadata = file.metadata
        guard metadata["format"] == formatName else { throw invalid("not a selector (metadata format is \(metadata["format"] ?? "missing"))") }
        guard metadata["version"] == formatVersion else { throw invalid("unsupported version \(metadata["version"] ?? "missing")") }
        guard let identity = metadata["clip_identity"], !identity.isEmpty else { throw invalid("metadata clip_identity is missing") }
        let bilinear: Tensor, logScale: Tensor
        do { (bilinear, logScale) = (try file.tensor("bilinear"), try file.tensor("log_scale")) } catch { throw invalid("\(error)") }
        guard bilinear.shape.count == 2, bilinear.shape[0] == bilinear.shape[1], bilinear.shape[0] > 0 else {
            throw invalid("tensor 'bilinear' has shape \(bilinear.shape), expected [D, D]")
        }
        guard logScale.shape == [1] else { throw invalid("tensor 'log_scale' has shape \(logScale.shape), expected [1]") }
        guard bilinear.storage.allSatisfy(\.isFinite), logScale.storage[0].isFinite else { throw invalid("non-finite parameters") }
        guard let cropGrid = Int(metadata["crop_grid"] ?? "0"), (0...SelectorTrainingConfiguration.maximumCropGrid).contains(cropGrid) else {
            throw invalid("metadata crop_grid is not an integer in 0...\(SelectorTrainingConfiguration.maximumCropGrid)")
        }
        // Selectors saved before native resolutions existed lack the key: they scored the model's own grid.
        guard let resolution = Int(metadata["resolution"] ?? "0"), resolution >= 0, cropGrid == 0 || resolution == 0 else {
            throw invalid("metadata resolution is not 0 or a positive integer (0 with crops)")
        }
        let head = SelectionHead(width: bilinear.shape[0], bilinear: bilinear.storage, logScale: logScale.storage[0])
        return SavedSelector(head: head, clipIdentity: identity, clipName: metadata["clip_name"] ?? "", cropGrid: cropGrid,
                             resolution: resolution, details: metadata["details"] ?? "{}")
    }
}

public enum ModelIdentity {
    /// The SHA-256 (hex) of a model's weights file: what a selector records and is checked against.
    public static func ofFile(_ url: URL) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { throw SelectionError.invalidFile(path: url.path, reason: "cannot open") }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 22), !chunk.isEmpty { hasher.update(chunk) }
        return SHA256.hexString(hasher.finalize())
    }
}
