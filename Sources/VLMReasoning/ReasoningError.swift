// Everything that stops a reasoning run before it generates, each naming the input at fault.

public enum ReasoningError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A model file or directory does not exist.
    case missingModel(String)
    /// A configuration value out of range (beam width, selection, stages, label bank...).
    case invalidConfiguration(String)
    /// The image cannot be used by the vision tower (size, aspect ratio, precomputed features).
    case invalidImage(String)
    /// The question (with its prompt and evidence) leaves no room to generate in the context.
    case contextTooSmall(needed: Int, capacity: Int)

    public var description: String {
        switch self {
        case let .missingModel(what): "missing model: \(what)"
        case let .invalidConfiguration(what): "invalid reasoning configuration: \(what)"
        case let .invalidImage(what): "image cannot be used: \(what)"
        case let .contextTooSmall(needed, capacity):
            "the question and its evidence need at least \(needed) tokens of context, the language model has \(capacity)"
        }
    }
}
