/// Errors raised while loading or running a CLIP model.
public enum CLIPError: Error, CustomStringConvertible, Equatable {
    /// `open_clip_config.json` is missing, malformed, or describes something inconsistent.
    case invalidConfig(path: String, reason: String)
    /// A valid open_clip configuration that this runtime does not implement (e.g. a timm tower).
    case unsupportedArchitecture(String)
    /// Bad caller input: wrong pixel count, token id out of range, empty batch...
    case invalidInput(String)

    public var description: String {
        switch self {
        case let .invalidConfig(path, reason): return "invalid open_clip config \(path): \(reason)"
        case let .unsupportedArchitecture(what): return "unsupported CLIP architecture: \(what)"
        case let .invalidInput(reason): return "invalid input: \(reason)"
        }
    }
}
