// The engine behind `generate-with-visual-selection`: staged reasoning (LLaVA-CoT) by a language model
// over evidence from a visual front end, with stage-level beam search and per-step patch attribution.
import Foundation
import VLMCLIP
import VLMImage
import VLMLanguage
import VLMTensor

/// Synchronous: the daemon calls `run` on a worker thread. `@unchecked Sendable` because everything it
/// holds is immutable after init (models, front end, configuration) and each run keeps its state (KV
/// caches, the pairwise judge's cache, the transcript) to itself, so runs may go on concurrently on
/// different threads. A custom judge passed at init is shared by every run and must allow that too.
public final class VisualReasoner: @unchecked Sendable {
    public let frontEnd: any VisualFrontEnd
    public let languageModel: LanguageModel
    public let configuration: ReasoningConfiguration
    /// A judge given at init replaces the one `configuration.judge` names (e.g. a test's stub).
    public let customJudge: (any CandidateJudge)?

    /// The composed CLIP + language-model path. Builds the label-bank classifier (one CLIP text pass per
    /// label and template).
    public convenience init(clip: CLIPModel, clipTokenizer: CLIPTokenizer, preprocessing: CLIPPreprocessing,
                            languageModel: LanguageModel, configuration: ReasoningConfiguration = ReasoningConfiguration()) throws {
        try configuration.validate()
        let frontEnd = try CLIPFrontEnd(clip: clip, tokenizer: clipTokenizer, preprocessing: preprocessing,
                                        configuration: configuration)
        try self.init(frontEnd: frontEnd, languageModel: languageModel, configuration: configuration)
    }

    /// Any visual front end; `judge` overrides the one `configuration.judge` names.
    public init(frontEnd: any VisualFrontEnd, languageModel: LanguageModel, configuration: ReasoningConfiguration,
                judge: (any CandidateJudge)? = nil) throws {
        try configuration.validate()
        self.frontEnd = frontEnd
        self.languageModel = languageModel
        self.configuration = configuration
        customJudge = judge
    }

    /// The judge for one run: the pairwise judge keeps a KV cache, so each run gets its own.
    func makeJudge() -> any CandidateJudge {
        if let customJudge { return customJudge }
        return switch configuration.judge {
        case .pairwise: PairwiseLanguageJudge(model: languageModel, bothOrders: configuration.judgeBothOrders)
        case .logLikelihood: LogLikelihoodJudge()
        }
    }

    /// Loads both models from disk, naming whichever is missing.
    public static func load(clipDirectory: URL, languageModelPath: URL, configuration: ReasoningConfiguration = ReasoningConfiguration(),
                            contextLength: Int? = nil) throws -> VisualReasoner {
        try configuration.validate()
        for file in [clipDirectory.appendingPathComponent(CLIPModel.configFileName),
                     clipDirectory.appendingPathComponent(CLIPModel.weightsFileName), languageModelPath]
        where !FileManager.default.fileExists(atPath: file.path) {
            throw ReasoningError.missingModel(file.path)
        }
        let clip = try CLIPModel(directory: clipDirectory)
        let preprocessing = try clip.imagePreprocessing()
        let languageModel = try LanguageModel(path: languageModelPath, contextLength: contextLength)
        return try VisualReasoner(clip: clip, clipTokenizer: CLIPTokenizer(), preprocessing: preprocessing,
                                  languageModel: languageModel, configuration: configuration)
    }

    /// Answers `question` about `image` in stages, streaming events.
    ///
    /// Throws only before generation starts: `ReasoningError` for a bad question or image, a selection
    /// the vision grid cannot satisfy or a context too small; `ComputeCancelled` for cancellation while
    /// encoding. Once generation
    /// has started, cancellation and failures end the run with `outcome` set and everything produced so
    /// far in the result. `compute`'s cancellation is checked before every sampled token and between steps.
    ///
    /// - Parameter precomputed: features of `image` the caller cached, to skip encoding it again.
    /// - Parameter selected: a region chosen before reasoning (by a learned selector): it is looked at
    ///   up front and its evidence joins the initial evidence, so the stages start from it.
    public func run(image: RGBImage, question: String, precomputed: PrecomputedImageFeatures? = nil, selected: PixelBox? = nil,
                    compute: ComputeContext = ComputeContext(),
                    onEvent: (ReasoningEvent) -> Void = { _ in }) throws -> ReasoningResult {
        let start = Date()
        let question = question.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !question.isEmpty else { throw ReasoningError.invalidConfiguration("the question is empty") }
        let builder = PromptBuilder(model: languageModel, stages: configuration.stages, question: question)
        // The cheap check first: a question that cannot fit is refused before the image is encoded.
        try checkContext(builder.tokens("").count)

        let prepared: any PreparedImage
        let evidence: [Evidence]
        do {
            prepared = try frontEnd.prepare(image, precomputed: precomputed, compute: compute)
            evidence = try prepared.initialEvidence(compute: compute)
                + (selected.map { [try upFrontLook(at: $0, prepared: prepared, compute: compute)] } ?? [])
        } catch let error as ReasoningError {
            throw error
        } catch where compute.isCancelled {
            throw ComputeCancelled()
        }
        try compute.checkCancellation()
        if case let .topK(k) = configuration.selection, let grid = prepared.grid, k > grid.height * grid.width {
            throw ReasoningError.invalidConfiguration("topK selection of \(k) patches from a \(grid.height)x\(grid.width) grid")
        }
        let visionSeconds = Date().timeIntervalSince(start)
        let evidenceText = evidence.map { "[\($0.text)]\n" }.joined()
        try checkContext(builder.tokens(evidenceText).count)

        return withoutActuallyEscaping(onEvent) { onEvent in
            let run = ReasoningRun(reasoner: self, prepared: prepared, builder: builder, question: question,
                                   evidence: evidence, start: start, compute: compute, onEvent: onEvent)
            run.timings.visionSeconds = visionSeconds
            return run.execute()
        }
    }

    /// The evidence of a crop chosen before any step, reported as a region named "selected".
    private func upFrontLook(at box: PixelBox, prepared: any PreparedImage, compute: ComputeContext) throws -> Evidence {
        var look = try prepared.lookEvidence(at: box, step: 0, compute: compute)
        look.source = .region(name: "selected", box: box)
        return look
    }

    /// The prompt must leave room for every stage's tags and a few tokens of each.
    private func checkContext(_ promptTokens: Int) throws {
        let needed = promptTokens + configuration.stages.count * Self.minimumTokensPerStage
        guard needed <= languageModel.contextLength else {
            throw ReasoningError.contextTooSmall(needed: needed, capacity: languageModel.contextLength)
        }
    }

    static let minimumTokensPerStage = 16
}
