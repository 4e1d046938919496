// Cost of the engine with SmolLM2-135M-Instruct and the tiny CLIP: time to first token, tokens/s
// per stage, beam width with and without prefix sharing, time per look. Runs only with
// VLMD_REASONING_BENCH=1 (bench/reasoning.sh); prints a table.
import Foundation
import Testing
import VLMCLIP
import VLMLanguage
@testable import VLMReasoning
import VLMTensor

@Suite struct ReasoningBenchmarks {
    static var enabled: Bool { ProcessInfo.processInfo.environment["VLMD_REASONING_BENCH"] == "1" }

    @Test func beamWidthAndPrefixSharing() throws {
        guard Self.enabled, let model = SmolLM2Tests.model else { return }
        let image = Models.image("chelsea.png")
        let question = "What animal is in the photo, and what is it doing?"
        let tokens = Int(ProcessInfo.processInfo.environment["VLMD_REASONING_BENCH_TOKENS"] ?? "") ?? 32
        func report(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        // VLMD_REASONING_BENCH_CLIP=DIR: another open_clip checkpoint (e.g. ../shared/models/cifar-clip-rn64); default rn-tiny.
        let clipDirectory = ProcessInfo.processInfo.environment["VLMD_REASONING_BENCH_CLIP"]
        let clip = try clipDirectory.map { try CLIPModel(directory: URL(fileURLWithPath: $0)) } ?? Models.rnTiny
        report("SmolLM2-135M-Instruct Q4_1 (threads \(ComputeContext.processorCount)) + \(clipDirectory ?? "rn-tiny") CLIP; \(tokens) tokens per stage, 2 steps, judge = log-likelihood unless noted")
        report("beam | share | judge    | total s | TTFT s | prompt tok | generated | gen tok/s (SUMMARY/CAPTION/REASONING/CONCLUSION) | judge s | looks | s/look")
        // VLMD_REASONING_BENCH_BEAMS="1,2,4" picks the beam widths; each runs with and without prefix
        // sharing (log-likelihood judge), then beam 2 once with the pairwise judge.
        let beams = (ProcessInfo.processInfo.environment["VLMD_REASONING_BENCH_BEAMS"] ?? "1,2,4").split(separator: ",").compactMap { Int($0) }
        var settings: [(Int, Bool, JudgeMode)] = []
        for beam in beams { for share in [true, false] { settings.append((beam, share, .logLikelihood)) } }
        if beams.contains(2) { settings.append((2, true, .pairwise)) }
        // VLMD_REASONING_BENCH_PAIRWISE_ONLY=1: just the pairwise-judge row.
        if ProcessInfo.processInfo.environment["VLMD_REASONING_BENCH_PAIRWISE_ONLY"] == "1" { settings = [(2, true, .pairwise)] }
        for (beam, share, judge) in settings {
            var configuration = ReasoningConfiguration()
            configuration.beamWidth = beam
            configuration.sharePrefix = share
            configuration.judge = judge
            configuration.maxTokensPerStage = tokens
            configuration.maxSteps = 2
            configuration.maxLooks = 2
            configuration.selection = .box(mass: 0.3)
            configuration.seed = 3
            let engine = try reasoner(clip, configuration, model: model)
            func row(_ label: String = "") throws -> ReasoningResult {
                var looks = 0
                let result = try engine.run(image: image, question: question, onEvent: { if case .look = $0 { looks += 1 } })
                report(Self.row(result, beam: beam, share: share, judge: judge.rawValue, looks: looks) + label)
                return result
            }
            let result = try row()
            // Paired: engine, plain baseline, engine again, so an order or load effect shows as two engine rows apart.
            if beam == 1 && share {
                try reportBaseline(result, configuration, model: model, question: question, report: report)
                _ = try row(" (again, after the baseline)")
            }
        }
        // VLMD_REASONING_BENCH_MMPROJ=1: the projector path (SmolLM2's random mmproj fixture), beam 1, where every
        // step records its tokens' attention to the image positions.
        if ProcessInfo.processInfo.environment["VLMD_REASONING_BENCH_MMPROJ"] == "1" {
            var configuration = ReasoningConfiguration()
            (configuration.maxTokensPerStage, configuration.maxSteps, configuration.maxLooks, configuration.seed) = (tokens, 2, 2, 3)
            configuration.selection = .box(mass: 0.3)
            let frontEnd = try ProjectorFrontEnd(mmproj: MultimodalChatReference.directory.appendingPathComponent("smollm2-mmproj.gguf"),
                                                 languageModel: model)
            let engine = try VisualReasoner(frontEnd: frontEnd, languageModel: model, configuration: configuration)
            var looks = 0
            let result = try engine.run(image: image, question: question, onEvent: { if case .look = $0 { looks += 1 } })
            report(Self.row(result, beam: 1, share: true, judge: "loglik", looks: looks) + " (projector path, mlp)")
        }
    }

    static func row(_ result: ReasoningResult, beam: Int, share: Bool, judge: String, looks: Int) -> String {
        let t = result.timings
        let rates = result.stages.map { String(format: "%.1f", $0.tokensPerSecond) }.joined(separator: "/")
        return String(format: "%4d | %5@ | %-8@ | %7.2f | %6.2f | %10d | %9d | %@ | %7.2f | %5d | %6.3f | attribution %.3f s", beam,
                      share ? "yes" : "no", judge, t.totalSeconds, t.firstTokenSeconds ?? -1, t.contextTokens, t.generatedTokens, rates,
                      t.judgeSeconds, looks, looks > 0 ? t.lookSeconds / Double(looks) : 0, t.attributionSeconds)
    }

    /// The same model without the engine: prefilling the first stage's prompt, and decoding with the
    /// same sampling, no stop strings. The engine's TTFT is vision + this prefill + its own overhead;
    /// its per-stage tok/s compare with this decode rate.
    func reportBaseline(_ result: ReasoningResult, _ configuration: ReasoningConfiguration, model: LanguageModel,
                        question: String, report: (String) -> Void) throws {
        let builder = PromptBuilder(model: model, stages: configuration.stages, question: question)
        // The first unit's prompt, as ReasoningRun builds it: evidence lines only if the first stage is the evidence stage.
        let first = configuration.stages[0]
        let evidence = first.role == .evidence ? result.evidence.map { "[\($0.text)]\n" }.joined() : ""
        let prompt = builder.tokens(evidence + "<\(first.tag)>")
        let sampling = SamplingParameters(temperature: configuration.temperature, topP: configuration.topP,
                                          repetitionPenalty: configuration.repetitionPenalty, seed: 1,
                                          maxTokens: configuration.maxTokensPerStage, logProbabilities: true)
        let start = try plainDecode(after: prompt, model: model, sampling: sampling)
        report(String(format: "baseline (no engine): vision %.2f s, prefill of the %d-token first prompt %.2f s, plain decode %.1f tok/s (%d tokens)",
                      result.timings.visionSeconds, prompt.count, start.prefillSeconds, start.tokensPerSecond, start.tokens))
        // Later stages decode deeper into the context, where attention costs more per token: the same
        // plain decode from the point where the steps stage began.
        guard let steps = configuration.stages.first(where: { $0.role == .steps }),
              let opening = result.transcript.range(of: "<\(steps.tag)>\n") else { return }
        let deeper = builder.tokens(String(result.transcript[..<opening.upperBound]))
        let deep = try plainDecode(after: deeper, model: model, sampling: sampling)
        report(String(format: "baseline (no engine): plain decode from the %@ stage's position (%d tokens in) %.1f tok/s",
                      steps.tag, deeper.count, deep.tokensPerSecond))
    }

    /// Prefills `prompt` in a fresh cache, then decodes from it with `sampling`.
    func plainDecode(after prompt: [Int32], model: LanguageModel, sampling: SamplingParameters) throws
        -> (prefillSeconds: Double, tokensPerSecond: Double, tokens: Int)
    {
        var cache = model.transformer.makeCache(capacity: model.contextLength)
        let prefillStart = Date()
        let logits = try model.prefill(prompt, cache: &cache)
        let prefillSeconds = Date().timeIntervalSince(prefillStart)
        let plain = try model.continueGeneration(cache: &cache, lastLogits: logits, history: prompt, parameters: sampling)
        return (prefillSeconds, Double(plain.tokenIDs.count) / plain.timings.generationSeconds, plain.tokenIDs.count)
    }
}
