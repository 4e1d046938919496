/// Every failure of this module. Messages name the input (file path, "base64 input", dataset file)
/// so the daemon can pass them to the client unchanged.
public enum ImageError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The bytes are not a PNG file, or are a damaged or truncated one.
    case invalidPNG(input: String, reason: String)
    /// The header asks for more pixels than the configured budget; nothing was decoded.
    case tooLarge(input: String, width: Int, height: Int, budget: Int)
    /// A file could not be read or written.
    case io(path: String, reason: String)
    /// A dataset file whose layout does not match its format.
    case invalidDataset(input: String, reason: String)
    /// A caller-supplied argument out of range (crop rectangle, record index, image size...).
    case invalidArgument(String)
    /// libpng refused to encode an image.
    case encodingFailed(String)

    public var description: String {
        switch self {
        case .invalidPNG(let input, let reason): "\(input): not a valid PNG image: \(reason)"
        case .tooLarge(let input, let w, let h, let budget):
            "\(input): image is \(w)x\(h) pixels, above the limit of \(budget) pixels"
        case .io(let path, let reason): "\(path): \(reason)"
        case .invalidDataset(let input, let reason): "\(input): \(reason)"
        case .invalidArgument(let message): message
        case .encodingFailed(let message): "PNG encoding failed: \(message)"
        }
    }
}
