/// Cached image features with their labels: the frozen image side of prompt learning.
public struct FeatureSet: Sendable, Equatable {
    /// One L2-normalised image embedding per image (as from `CLIPModel.encodeImages`).
    public var features: [[Float]]
    /// Class index per image, 0..<classNames.count.
    public var labels: [Int]

    public init(features: [[Float]], labels: [Int]) {
        self.features = features
        self.labels = labels
    }

    public var count: Int { labels.count }

    /// The subset at `indices`, in that order.
    public func subset(_ indices: [Int]) -> FeatureSet {
        FeatureSet(features: indices.map { features[$0] }, labels: indices.map { labels[$0] })
    }

    /// Checks shapes and labels against the task; `name` identifies the set in errors.
    func validate(name: String, classCount: Int, embedDim: Int) throws {
        guard features.count == labels.count else {
            throw PromptLearningError.invalidInput("\(name): \(features.count) feature vectors but \(labels.count) labels")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= classCount }) {
            throw PromptLearningError.invalidInput("\(name): label \(labels[bad]) at index \(bad) is outside 0..<\(classCount) (the class names)")
        }
        if let bad = features.firstIndex(where: { $0.count != embedDim }) {
            throw PromptLearningError.invalidInput("\(name): feature \(bad) has \(features[bad].count) values, the model's embedding has \(embedDim)")
        }
        if let bad = features.firstIndex(where: { !$0.allSatisfy(\.isFinite) }) {
            throw PromptLearningError.invalidInput("\(name): feature \(bad) has non-finite values")
        }
        // Logits are logitScale · cosine only for unit vectors; anything else is a caller mistake.
        if let bad = features.firstIndex(where: { abs($0.reduce(0) { $0 + $1 * $1 }.squareRoot() - 1) > 1e-3 }) {
            let norm = features[bad].reduce(0) { $0 + $1 * $1 }.squareRoot()
            throw PromptLearningError.invalidInput("\(name): feature \(bad) has norm \(norm); expected L2-normalised image features")
        }
    }
}

/// Errors from prompt learning; every message names the input at fault.
public enum PromptLearningError: Error, CustomStringConvertible {
    case invalidInput(String)
    case invalidConfiguration(String)
    case notEnoughExamples(String)
    case invalidFile(path: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidInput(message): return "invalid prompt-learning input: \(message)"
        case let .invalidConfiguration(message): return "invalid prompt-learning configuration: \(message)"
        case let .notEnoughExamples(message): return "not enough examples: \(message)"
        case let .invalidFile(path, reason): return "invalid learned-prompt file \(path): \(reason)"
        }
    }
}
