import VLMCLIP

/// Everything that determines a prompt-learning run. Together with the seed and the inputs it
/// reproduces the run exactly; it is stored (as JSON) in every saved `LearnedPrompt`.
public struct PromptLearningConfiguration: Sendable, Codable, Equatable {
    public enum Method: String, Sendable, Codable, CaseIterable {
        /// CoOp (Zhou et al. 2022): free soft context vectors; the result is read back through nearest tokens.
        case soft
        /// PEZ (Wen et al. 2023): soft vectors updated with the gradient taken at their projection onto
        /// the token vocabulary; the result is the projected tokens, an exact readable prompt.
        case projected
        /// Greedy forward selection of an ensemble of readable templates from `bank`.
        case templateBank
        /// A language model proposes templates (LLM-as-optimiser); CLIP scores them on the training shots.
        case languageModel
        /// Learning to Name Classes (Parisot et al. 2023): the class name inside a fixed readable
        /// template (`startingTemplate`) is replaced by learned word embeddings, one set per class;
        /// the result is read back as each class's nearest real words.
        case names
    }

    /// JSON: `{"phrase": "a photo of a"}` or `"random"`.
    public enum Initialisation: Sendable, Codable, Equatable {
        /// Token embeddings of a phrase (its token count sets M; `contextLength` is ignored).
        case phrase(String)
        /// N(0, 0.02²), CoOp's random initialisation.
        case random

        private struct Phrase: Codable { var phrase: String }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(Phrase.self) { self = .phrase(text.phrase); return }
            guard try container.decode(String.self) == "random" else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "initialisation must be \"random\" or {\"phrase\": ...}")
            }
            self = .random
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case let .phrase(text): try container.encode(Phrase(phrase: text))
            case .random: try container.encode("random")
            }
        }
    }

    public enum Optimiser: String, Sendable, Codable {
        /// SGD with momentum 0.9 (CoOp's choice).
        case sgd
        /// Adam (β₁ 0.9, β₂ 0.999, ε 1e-8); PEZ's choice.
        case adam
    }

    /// Nearest-token metric for projection and for reading soft prompts (cosine: PEZ's choice, and
    /// insensitive to the norm differences between learned vectors and token embeddings).
    public enum ProjectionMetric: String, Sendable, Codable { case cosine, euclidean }

    public var method: Method = .soft
    /// Training images per class (K shots) and held-out validation images per class.
    public var shots: Int = 16
    public var validationPerClass: Int = 4
    /// Number of context vectors M (random initialisation).
    public var contextLength: Int = 4
    public var classSpecific: Bool = false
    public var initialisation: Initialisation = .phrase("a photo of a")
    public var optimiser: Optimiser = .sgd
    public var learningRate: Float = 0.002
    /// Optimiser steps (each a full pass over the training shots: the features are cached, so a full
    /// batch costs one text-tower forward/backward for all classes, the same as a mini-batch).
    public var steps: Int = 200
    /// Linear warm-up steps, then cosine decay to zero over the remaining steps (constant when false).
    public var warmupSteps: Int = 0
    public var cosineSchedule: Bool = true
    /// Validation accuracy is measured every `evaluationInterval` steps; training stops after
    /// `patience` evaluations without improvement (nil: never stops early). The best state on
    /// validation is kept either way.
    public var evaluationInterval: Int = 5
    public var patience: Int? = nil
    /// KgCoOp: λ · mean_c ‖w_c − w̄_c‖² with w̄_c the class's embedding under the template bank ensemble.
    public var textAnchorWeight: Float = 0
    /// μ · mean_m ‖ctx_m − nearest token embedding‖² / mean ‖token embedding‖² (Euclidean; scale-free),
    /// pulling soft vectors toward real words.
    public var vocabularyDistanceWeight: Float = 0
    public var projectionMetric: ProjectionMetric = .cosine
    public var seed: UInt64 = 0
    /// Readable templates with "{}" for the class name: the bank for selection, the anchors for
    /// KgCoOp, the baseline ensemble and the LM's examples.
    public var bank: [String] = PromptTemplates.cifar
    /// Largest ensemble the bank selection may build.
    public var maximumBankTemplates: Int = 8
    /// LM-as-optimiser: rounds, candidates asked for per round, token budget per proposal.
    public var languageModelRounds: Int = 3
    public var languageModelCandidates: Int = 4
    public var languageModelMaxTokens: Int = 48
    public var languageModelTemperature: Float = 0.8

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case method, shots, validationPerClass, contextLength, classSpecific, initialisation, optimiser, learningRate, steps, warmupSteps, cosineSchedule, evaluationInterval, patience, textAnchorWeight, vocabularyDistanceWeight, projectionMetric, seed, bank, maximumBankTemplates, languageModelRounds, languageModelCandidates, languageModelMaxTokens, languageModelTemperature
    }

    /// Decodes a partial configuration: missing keys keep their defaults (so a request may give
    /// only what it changes, e.g. {"method": "projected", "steps": 300}).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        method = try c.decodeIfPresent(type(of: method).self, forKey: .method) ?? method
        shots = try c.decodeIfPresent(type(of: shots).self, forKey: .shots) ?? shots
        validationPerClass = try c.decodeIfPresent(type(of: validationPerClass).self, forKey: .validationPerClass) ?? validationPerClass
        contextLength = try c.decodeIfPresent(type(of: contextLength).self, forKey: .contextLength) ?? contextLength
        classSpecific = try c.decodeIfPresent(type(of: classSpecific).self, forKey: .classSpecific) ?? classSpecific
        initialisation = try c.decodeIfPresent(type(of: initialisation).self, forKey: .initialisation) ?? initialisation
        optimiser = try c.decodeIfPresent(type(of: optimiser).self, forKey: .optimiser) ?? optimiser
        learningRate = try c.decodeIfPresent(type(of: learningRate).self, forKey: .learningRate) ?? learningRate
        steps = try c.decodeIfPresent(type(of: steps).self, forKey: .steps) ?? steps
        warmupSteps = try c.decodeIfPresent(type(of: warmupSteps).self, forKey: .warmupSteps) ?? warmupSteps
        cosineSchedule = try c.decodeIfPresent(type(of: cosineSchedule).self, forKey: .cosineSchedule) ?? cosineSchedule
        evaluationInterval = try c.decodeIfPresent(type(of: evaluationInterval).self, forKey: .evaluationInterval) ?? evaluationInterval
        patience = try c.decodeIfPresent(Int.self, forKey: .patience)
        textAnchorWeight = try c.decodeIfPresent(type(of: textAnchorWeight).self, forKey: .textAnchorWeight) ?? textAnchorWeight
        vocabularyDistanceWeight = try c.decodeIfPresent(type(of: vocabularyDistanceWeight).self, forKey: .vocabularyDistanceWeight) ?? vocabularyDistanceWeight
        projectionMetric = try c.decodeIfPresent(type(of: projectionMetric).self, forKey: .projectionMetric) ?? projectionMetric
        seed = try c.decodeIfPresent(type(of: seed).self, forKey: .seed) ?? seed
        bank = try c.decodeIfPresent(type(of: bank).self, forKey: .bank) ?? bank
        maximumBankTemplates = try c.decodeIfPresent(type(of: maximumBankTemplates).self, forKey: .maximumBankTemplates) ?? maximumBankTemplates
        languageModelRounds = try c.decodeIfPresent(type(of: languageModelRounds).self, forKey: .languageModelRounds) ?? languageModelRounds
        languageModelCandidates = try c.decodeIfPresent(type(of: languageModelCandidates).self, forKey: .languageModelCandidates) ?? languageModelCandidates
        languageModelMaxTokens = try c.decodeIfPresent(type(of: languageModelMaxTokens).self, forKey: .languageModelMaxTokens) ?? languageModelMaxTokens
        languageModelTemperature = try c.decodeIfPresent(type(of: languageModelTemperature).self, forKey: .languageModelTemperature) ?? languageModelTemperature
    }

    /// The template a run starts from (and the zero-shot baseline): the initial phrase + " {}.".
    public var startingTemplate: String {
        switch initialisation {
        case let .phrase(text): return text + " {}."
        case .random: return "a photo of a {}."
        }
    }
}
