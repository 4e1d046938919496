import ArgumentParser
import Foundation
import VLMWire

struct OptimisePrompt: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "optimise-prompt",
        abstract: "Few-shot prompt learning for CLIP classification (coop, pez, names, bank, lm), with live progress.")

    @OptionGroup var options: DaemonOptions
    @OptionGroup var clip: CLIPOptions

    @Option(help: "Training pool: a CIFAR-format file (e.g. train_5000.bin) or, with --format list, a 'path label' list.")
    var dataset: String

    @Option(help: "Class names for CIFAR formats: a file with one per line, or comma-separated.")
    var labels: String?

    @Option(help: "cifar10, cifar100, cifar100-coarse or list.")
    var format = "cifar10"

    @Option(help: "Test file in the same format, evaluated at the end.")
    var test: String?

    @Option(parsing: .unconditional, help: "Evaluate only the first N test records.")
    var testLimit: Int?

    @Option(help: "coop (soft context), pez (projected onto real tokens), names (learned class names), bank (template selection), lm (language-model proposals).")
    var method = "coop"

    @Option(parsing: .unconditional, help: "Training images per class.")
    var shots = 16

    @Option(parsing: .unconditional, help: "Optimiser steps (coop, pez).")
    var steps = 200

    @Option(help: "sgd or adam.")
    var optimiser = "sgd"

    @Option(parsing: .unconditional, help: "Learning rate.")
    var learningRate: Float?

    @Option(help: "Initial phrase, or 'random'.")
    var initialisation = "a photo of a"

    @Option(help: "A GGUF language model (needed by --method lm).")
    var lm: String?

    @Option(parsing: .unconditional, help: "Random seed for the split and the optimiser.")
    var seed: UInt64 = 0

    @Option(help: "Save the learned prompt under this name (classify --learned-prompt NAME).")
    var saveAs: String?

    func validate() throws {
        try require(shots >= 1, "--shots must be at least 1")
        try require(steps >= 1, "--steps must be at least 1")
        try require(testLimit.map { $0 >= 1 } ?? true, "--test-limit must be at least 1")
        try require(learningRate.map { $0 > 0 } ?? true, "--learning-rate must be > 0")
    }

    func run() async throws {
        let session = try await Session.start(options)
        let clipID = try await session.loadCLIP(clip.clip)
        let data = PromptDatasetParam(
            format: format, path: absolute(dataset), labels: try labels.map { try listArgument($0, separator: ",") },
            test: test.map(absolute), testLimit: testLimit)
        var lmID: String?
        if let lm { lmID = try await session.loadModelID(kind: "gguf", path: lm) }
        let params = OptimisePromptParams(
            model: clipID, lm: lmID, dataset: data, method: method, shots: shots, initialisation: initialisation, optimiser: optimiser,
            learningRate: learningRate, steps: steps, seed: seed, saveAs: saveAs)
        let json = options.json, quiet = options.quiet
        let result = try await session.send(OptimisePromptRequest.self, params, onPartial: { step in
            if json { Terminal.json(step); return }
            guard !quiet else { return }
            Terminal.note(describeStep(step))
        }, onCancelled: { best in
            // The daemon returns the best prompt so far; show it as the table, marked as cut short.
            guard best != .null else { return }
            if json { return Terminal.json(best) }
            guard let best = try? JSONCoding.convert(best, to: OptimisePromptResult.self) else { return }
            Terminal.line(renderPromptResult(best) + "\n(stopped by Ctrl-C: best so far)")
        })
        await session.close()
        if json { Terminal.json(result) } else { Terminal.line(renderPromptResult(result)) }
    }
}


func describeStep(_ step: OptimisePromptStep) -> String {
    var line = "step \(step.step)/\(step.totalSteps)"
    if let loss = step.loss { line += String(format: "  loss %.4f", Double(loss)) }
    if let train = step.trainAccuracy { line += String(format: "  train %.1f%%", 100 * train) }
    if let validation = step.validationAccuracy { line += String(format: "  val %.1f%%", 100 * validation) }
    return line + "  \"\(step.prompt)\""
}

/// The before/after accuracy table, the prompt and where it was saved.
func renderPromptResult(_ r: OptimisePromptResult) -> String {
    func percent(_ value: Double?) -> String { value.map { String(format: "%6.2f%%", 100 * $0) } ?? "      —" }
    var lines = ["", "                 validation     test"]
    let rows = [("zero-shot", r.zeroShot), ("bank ensemble", r.bankEnsemble), ("learned", r.learned)]
        + (r.nearestWordAccuracy.map { [("nearest words", $0)] } ?? [])
    for (name, pair) in rows {
        lines.append(name.padding(toLength: 16, withPad: " ", startingAt: 0) + "  \(percent(pair.validation))   \(percent(pair.test))")
    }
    lines.append("")
    lines.append("prompt (\(r.method)): \(r.prompt)")
    for (index, group) in r.nearestTokens.enumerated() {
        let words = group.map { token in String(format: "%@ (%.3f)", token.text, Double(token.distance)) }
        lines.append("nearest tokens\(r.nearestTokens.count > 1 ? " [\(index)]" : ""): " + words.joined(separator: "  "))
    }
    if let fluency = r.fluency { lines.append(String(format: "fluency: %.3f nats/token", fluency)) }
    lines.append(String(format: "steps %d (best %d%@), %.1f s", r.stepsRun, r.bestStep, r.stoppedEarly ? ", stopped early" : "", r.seconds))
    if let saved = r.savedTo { lines.append("saved to \(saved)") }
    return lines.joined(separator: "\n")
}
