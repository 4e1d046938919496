import Foundation
import VLMCLIP
import VLMLanguage
import VLMTensor

/// A source of candidate prompt templates for the LM-as-optimiser search. The search calls it once
/// per round with the best templates so far; implementations may return any text, the search
/// parses and validates it (`TemplateCandidate.parse`).
public protocol TemplateProposer: Sendable {
    /// Up to `count` raw candidate texts, given `examples` (template, training accuracy), best first.
    func propose(examples: [(template: String, accuracy: Double)], count: Int, round: Int,
                 compute: ComputeContext) throws -> [String]
    /// Mean per-token log-likelihood of `text` (nil when the source cannot score text).
    func fluency(of text: String, compute: ComputeContext) throws -> Double?
}

/// Proposals from a loaded GGUF language model through a few-shot completion meta-prompt (works for
/// base models, which is what the tiny test model is; no chat template is applied):
///
///     Prompts for a photo classifier. {} is replaced by the object name. Higher accuracy is better.
///     prompt: a photo of a {}. | accuracy: 62%
///     …
///     prompt:
///
/// Each candidate is one sampled line (stop at newline), seeded from `seed`, round and index.
public struct LanguageModelProposer: TemplateProposer {
    public let model: LanguageModel
    public var maxTokens: Int
    public var temperature: Float
    public var seed: UInt64

    public init(model: LanguageModel, maxTokens: Int = 48, temperature: Float = 0.8, seed: UInt64 = 0) {
        (self.model, self.maxTokens, self.temperature, self.seed) = (model, maxTokens, temperature, seed)
    }

    public static func metaPrompt(examples: [(template: String, accuracy: Double)]) -> String {
        var text = "Prompts for a photo classifier. {} is replaced by the object name. Higher accuracy is better.\n"
        // Worst first, so the best examples sit next to the completion point (as in OPRO).
        for example in examples.reversed() {
            text += "prompt: \(example.template) | accuracy: \(Int((example.accuracy * 100).rounded()))%\n"
        }
        return text + "prompt:"
    }

    public func propose(examples: [(template: String, accuracy: Double)], count: Int, round: Int,
                        compute: ComputeContext) throws -> [String] {
        let prompt = model.tokenize(Self.metaPrompt(examples: examples))
        return try (0..<count).map { index in
            let parameters = SamplingParameters(
                temperature: temperature, topK: 40, seed: seed &+ UInt64(round * 1000 + index),
                maxTokens: maxTokens, stopStrings: ["\n"])
            return try model.generate(prompt: prompt, parameters: parameters, compute: compute).text
        }
    }

    /// Mean log p(token) of `text` after BOS (or after its first token when the model adds no BOS).
    public func fluency(of text: String, compute: ComputeContext) throws -> Double? {
        let tokens = model.tokenize(text)
        guard tokens.count >= 2 else { return nil }
        let total = try model.score(context: [tokens[0]], continuations: [Array(tokens.dropFirst())], compute: compute)[0]
        return total / Double(tokens.count - 1)
    }
}

/// Turning free text into a valid template.
public enum TemplateCandidate {
    public static let maximumCharacters = 120

    /// A valid template from a proposal, or nil. Valid: exactly one "{}", some letters besides it, no
    /// control characters, at most `maximumCharacters`, and filled with the longest class name it
    /// fits the text tower's context without truncation. Cleaning: first non-empty line; list markers,
    /// quotes, a leading "prompt:" and a trailing "| accuracy…" are dropped; extra "{}" and stray
    /// braces are removed; a template without "{}" gets " {}." appended (its trailing period dropped).
    public static func parse(_ raw: String, tokenizer: CLIPTokenizer, classNames: [String], contextLength: Int) -> String? {
        guard var text = raw.split(whereSeparator: \.isNewline).map({ $0.trimmingCharacters(in: .whitespaces) })
            .first(where: { !$0.isEmpty }) else { return nil }
        if let bar = text.range(of: "|") { text = String(text[..<bar.lowerBound]) }
        if text.lowercased().hasPrefix("prompt:") { text = String(text.dropFirst(7)) }
        text = text.trimmingCharacters(in: .whitespaces)
        // list markers: "- ", "* ", "1. ", "2) ", quotes
        text = String(text.drop(while: { "-*•\"'` ".contains($0) }))
        let digits = text.prefix(while: \.isNumber)
        if !digits.isEmpty, let next = text.dropFirst(digits.count).first, ".)".contains(next) {
            text = String(text.dropFirst(digits.count + 1))
        }
        text = text.trimmingCharacters(in: CharacterSet(charactersIn: "\"'` "))
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return nil }
        // Keep the first slot, drop any other braces.
        if let slot = text.range(of: "{}") {
            let before = text[..<slot.lowerBound].filter { $0 != "{" && $0 != "}" }
            let after = text[slot.upperBound...].filter { $0 != "{" && $0 != "}" }
            text = before + "{}" + after
        } else {
            text = text.filter { $0 != "{" && $0 != "}" }
            while let last = text.last, ".!?,;: ".contains(last) { text.removeLast() }
            guard !text.isEmpty else { return nil }
            text += " {}."
        }
        text = text.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        guard text.count <= maximumCharacters,
              text.replacingOccurrences(of: "{}", with: "").contains(where: \.isLetter) else { return nil }
        let longest = classNames.map { tokenizer.encode(PromptTemplates.fill(text, with: $0)).count }.max() ?? 0
        guard longest + 2 <= contextLength else { return nil }
        return text
    }
}
