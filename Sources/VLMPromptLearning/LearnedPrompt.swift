import Foundation
import VLMImage
import VLMCLIP
import VLMTensor

/// A learned prompt, ready to build zero-shot classifier weights or be saved.
///
/// Soft prompts keep their context vectors (the text is only a nearest-token reading); every other
/// method's prompt *is* its text templates.
public struct LearnedPrompt: Sendable, Equatable, Codable {
    public var method: PromptLearningConfiguration.Method
    public var classNames: [String]
    /// Readable templates with "{}" (soft: the nearest-token reading, for display only).
    public var templates: [String]
    /// Soft prompts only: the learned context vectors.
    public var context: ContextVectors?
    public var configuration: PromptLearningConfiguration

    public init(method: PromptLearningConfiguration.Method, classNames: [String], templates: [String],
                context: ContextVectors?, configuration: PromptLearningConfiguration) {
        (self.method, self.classNames, self.templates, self.context, self.configuration) =
            (method, classNames, templates, context, configuration)
    }

    /// Zero-shot classifier weights for `classNames` (default: the training classes). A shared soft
    /// context transfers to new class names; a class-specific one only fits its own classes.
    public func classifierWeights(clip: CLIPModel, tokenizer: CLIPTokenizer, classNames: [String]? = nil,
                                  compute: ComputeContext = ComputeContext()) throws -> ZeroShotClassifier {
        let names = classNames ?? self.classNames
        try validateClassNames(names)
        guard let context else {
            return try ZeroShotClassifier(model: clip, tokenizer: tokenizer, classNames: names, templates: templates,
                                          compute: compute)
        }
        let weights = clip.textTowerWeights
        guard context.width == weights.width else {
            throw PromptLearningError.invalidInput("learned context has width \(context.width), the model's text tower \(weights.width)")
        }
        if context.classSpecific && names != self.classNames {
            throw PromptLearningError.invalidInput("a class-specific context only applies to its own \(self.classNames.count) classes")
        }
        let layout = try PromptLayout(tokenizer: tokenizer, classNames: names, contextLength: context.count, classSpecific: context.classSpecific,
                                      maximumTokens: weights.contextLength, slot: configuration.contextSlot)
        let objective = PromptObjective(tower: DifferentiableTextTower(weights: weights), layout: layout, logitScale: clip.logitScale,
                                        compute: compute)
        let classWeights = objective.classWeights(context)
        return try ZeroShotClassifier(classNames: names, templateEmbeddings: classWeights.map { [$0] })
    }

    // MARK: - File format

    /// File layout: a safetensors file. Tensor "context" (F32 [groups, M, width]) for soft prompts;
    /// `__metadata__` (strings, as the format requires) holds format/version, method, class names,
    /// templates and the configuration (JSON), the seed and the prompt text.
    static let formatName = "vlmd-learned-prompt"
    static let formatVersion = "1"

    public func save(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ value: T) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        let metadata: [String: String] = [
            "format": Self.formatName, "version": Self.formatVersion, "method": method.rawValue,
            "class_names": try json(classNames), "templates": try json(templates),
            "configuration": try json(configuration), "seed": String(configuration.seed),
            "prompt_text": templates.joined(separator: "; "),
            "class_specific": String(context?.classSpecific ?? false),
        ]
        var tensors: [(String, [Int], [Float])] = []
        if let context { tensors.append(("context", [context.groups, context.count, context.width], context.values)) }
        try SafeTensorsWriter.write(tensors, metadata: metadata, to: url)
    }

    public static func load(from url: URL) throws -> LearnedPrompt {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(url: url) } catch {
            throw PromptLearningError.invalidFile(path: url.path, reason: "\(error)")
        }
        func invalid(_ reason: String) -> PromptLearningError { .invalidFile(path: url.path, reason: reason) }
        let metadata = file.metadata
        guard metadata["format"] == formatName else { throw invalid("not a learned prompt (metadata format is \(metadata["format"] ?? "missing"))") }
        guard metadata["version"] == formatVersion else { throw invalid("unsupported version \(metadata["version"] ?? "missing")") }
        func decode<T: Decodable>(_ type: T.Type, _ key: String) throws -> T {
            guard let text = metadata[key] else { throw invalid("metadata \(key) is missing") }
            do { return try JSONDecoder().decode(T.self, from: Data(text.utf8)) } catch { throw invalid("metadata \(key) is not valid: \(error)") }
        }
        guard let method = metadata["method"].flatMap(PromptLearningConfiguration.Method.init(rawValue:)) else {
            throw invalid("unknown method \(metadata["method"] ?? "missing")")
        }
        let classNames = try decode([String].self, "class_names")
        let templates = try decode([String].self, "templates")
        let configuration = try decode(PromptLearningConfiguration.self, "configuration")
        var context: ContextVectors?
        if file.contains("context") {
            let tensor: Tensor
            do { tensor = try file.tensor("context") } catch { throw invalid("\(error)") }
            let shape = tensor.shape
            let classSpecific = metadata["class_specific"] == "true"
            guard shape.count == 3, shape.allSatisfy({ $0 > 0 }), shape[0] == (classSpecific ? classNames.count : 1) else {
                throw invalid("tensor 'context' has shape \(shape), expected [\(classSpecific ? classNames.count : 1), M, width]")
            }
            guard tensor.storage.allSatisfy(\.isFinite) else { throw invalid("tensor 'context' has non-finite values") }
            context = ContextVectors(count: shape[1], width: shape[2], classSpecific: classSpecific, values: tensor.storage)
        } else if method == .soft {
            throw invalid("a soft prompt needs the tensor 'context'")
        }
        guard context != nil || !templates.isEmpty else { throw invalid("no templates and no context") }
        let prompt = LearnedPrompt(method: method, classNames: classNames, templates: templates, context: context, configuration: configuration)
        try prompt.validateClassNames(classNames)
        return prompt
    }

    private func validateClassNames(_ names: [String]) throws {
        guard !names.isEmpty else { throw PromptLearningError.invalidInput("no class names") }
        if let bad = names.firstIndex(where: { $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }) {
            throw PromptLearningError.invalidInput("class name \(bad) is empty")
        }
    }
}
