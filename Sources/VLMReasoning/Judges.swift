// Choosing the best of N candidates: a single-elimination tournament of pairwise verdicts, as in
// LLaVA-CoT's stage-level beam search, with the judge behind a protocol.
import Foundation
import VLMLanguage
import VLMTensor

/// One candidate continuation, as a judge sees it.
public struct JudgeCandidate: Sendable {
    public var index: Int
    public var text: String
    /// Mean log p per sampled token under the unmodified model distribution (nil if not measured).
    public var meanLogProbability: Double?

    public init(index: Int, text: String, meanLogProbability: Double?) {
        self.index = index; self.text = text; self.meanLogProbability = meanLogProbability
    }
}

/// What a judge compares: two candidates for the same place in the same context.
public struct JudgeRequest: Sendable {
    public var question: String
    public var stage: StageSpecification
    /// The assistant text written so far (tags, evidence, earlier stages).
    public var context: String
    public var first: JudgeCandidate
    public var second: JudgeCandidate
}

public protocol CandidateJudge {
    /// A score per candidate; the higher one wins, a tie goes to `first`. A verdict, once asked for,
    /// runs to the end on `compute`'s threads (the run checks for cancellation between verdicts).
    func scores(_ request: JudgeRequest, compute: ComputeContext) throws -> (first: Double, second: Double)
}

/// Prefers the candidate the model itself found more likely, per token (so length does not decide).
public struct LogLikelihoodJudge: CandidateJudge {
    public init() {}
    public func scores(_ request: JudgeRequest, compute: ComputeContext) throws -> (first: Double, second: Double) {
        (request.first.meanLogProbability ?? -.infinity, request.second.meanLogProbability ?? -.infinity)
    }
}

/// LLaVA-CoT's pairwise judge: the model is shown the question, the context and both responses, and
/// asked which is better, answering 1 or 2. The verdict compares log p("1") with log p("2") instead of
/// sampling an answer, so it is deterministic and graded.
///
/// The prompt puts what stays the same (instructions, question, context) before what changes (the two
/// responses), and the judge keeps its KV cache between verdicts: asking again with the order swapped,
/// the next pair of the tournament, or the next stage (whose context extends this one) re-runs only the
/// tokens after the common prefix. A class because of that cache; not for concurrent use.
public final class PairwiseLanguageJudge: CandidateJudge {
    public let model: LanguageModel
    /// Ask again with the responses swapped and add the two verdicts (cancels position bias).
    public let bothOrders: Bool
    /// Longest context / response text shown to the judge (the end of the context is kept: it is what
    /// is being continued).
    static let maxContextCharacters = 3000
    static let maxResponseCharacters = 500
    private var cache: PrefixCache

    public init(model: LanguageModel, bothOrders: Bool = true) {
        self.model = model
        self.bothOrders = bothOrders
        cache = PrefixCache(model: model)
    }

    public func scores(_ request: JudgeRequest, compute: ComputeContext) throws -> (first: Double, second: Double) {
        let compute = compute.uncancellable
        let forward = try answerLogProbabilities(request, first: request.first.text, second: request.second.text, compute: compute)
        guard bothOrders else { return forward }
        let swapped = try answerLogProbabilities(request, first: request.second.text, second: request.first.text, compute: compute)
        return (forward.first + swapped.second, forward.second + swapped.first)
    }

    /// The prompt, in LLaVA-CoT's wording adapted to a text-only judge. Everything that depends on the
    /// stage or the responses comes after the context, so consecutive verdicts share the longest
    /// possible prefix (and the context is cut from the front only when it is very long).
    func prompt(_ request: JudgeRequest, first: String, second: String, contextCharacters: Int = maxContextCharacters) -> String {
        """
        Now you act as a judge, helping me determine which of two texts better continues a staged answer \
        to a question about an image.
        Question: \(request.question)
        Written so far: \(String(request.context.suffix(contextCharacters)))
        Which text is the better <\(request.stage.tag)> stage (\(request.stage.instruction))?
        Response 1: \(String(first.prefix(Self.maxResponseCharacters)))
        Response 2: \(String(second.prefix(Self.maxResponseCharacters)))
        Which response is better? Answer 1 or 2.
        """
    }

    /// (log p("1"), log p("2")) as the model's reply.
    func answerLogProbabilities(_ request: JudgeRequest, first: String, second: String,
                                compute: ComputeContext) throws -> (first: Double, second: Double) {
        // Shorten the context shown until the prompt fits the model (small models have small contexts).
        var contextCharacters = Self.maxContextCharacters
        var rendered: String, context: [Int32]
        repeat {
            let text = prompt(request, first: first, second: second, contextCharacters: contextCharacters)
            rendered = model.chatTemplate.map { $0.render([ChatMessage(role: "user", content: sanitized(text))]) } ?? text + "\nAnswer:"
            context = model.tokenize(rendered, parseSpecial: true)
            contextCharacters /= 2
        } while context.count + 4 > model.contextLength && contextCharacters > 0
        guard context.count + 4 <= model.contextLength else {
            throw LanguageModelError.contextFull(needed: context.count + 4, capacity: model.contextLength)
        }
        let answers = [" 1", " 2"].map { continuationTokens(context: context, rendered: rendered, answer: $0) }
        let logits = try cache.extend(to: context, model: model, compute: compute)
        let logProbabilities = try model.scoreContinuations(cache: cache.cache, lastLogits: logits, continuations: answers,
                                                            compute: compute)
        return (logProbabilities[0], logProbabilities[1])
    }

    /// The answer's tokens as they follow the context (`LanguageModel.continuationTokens`); chat models
    /// answer without the leading space.
    func continuationTokens(context: [Int32], rendered: String, answer: String) -> [Int32] {
        let answer = model.chatTemplate == nil ? answer : String(answer.dropFirst())
        return model.continuationTokens(answer, after: rendered, contextTokens: context, parseSpecial: true)
    }
}

/// Removes chat control markers from user-supplied text, so a question cannot open or close turns.
func sanitized(_ text: String) -> String {
    text.replacingOccurrences(of: "<|", with: "< |").replacingOccurrences(of: "|>", with: "| >")
}

public enum Tournament {
    public typealias Verdict = (first: Int, second: Int, scores: (Double, Double), winner: Int)

    /// Single elimination: candidates meet in pairs (0-1, 2-3, ...), winners advance, an odd one out
    /// advances unopposed. `compare(a, b)` returns their scores; the higher wins, a tie goes to `a`
    /// (the lower index). `onVerdict` hears each match as it is decided. Returns the champion and every
    /// verdict in the order played.
    public static func run(count: Int, compare: (Int, Int) throws -> (Double, Double),
                           onVerdict: (Verdict) -> Void = { _ in }) rethrows -> (winner: Int, verdicts: [Verdict]) {
        precondition(count >= 1, "a tournament needs a candidate")
        var round = Array(0..<count)
        var verdicts: [Verdict] = []
        while round.count > 1 {
            var next: [Int] = []
            for i in stride(from: 0, to: round.count, by: 2) {
                guard i + 1 < round.count else { next.append(round[i]); continue }
                let (a, b) = (round[i], round[i + 1])
                let scores = try compare(a, b)
                let verdict: Verdict = (a, b, scores, scores.1 > scores.0 ? b : a)
                verdicts.append(verdict)
                onVerdict(verdict)
                next.append(verdict.winner)
            }
            round = next
        }
        return (round[0], verdicts)
    }
}
