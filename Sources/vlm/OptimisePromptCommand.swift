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
        var params: [String: JSONValue] = [
            "model": .string(clipID), "method": .string(method), "shots": .int(Int64(shots)), "steps": .int(Int64(steps)),
            "optimiser": .string(optimiser), "initialisation": .string(initialisation), "seed": .int(Int64(bitPattern: seed)),
        ]
        var data: [String: JSONValue] = ["format": .string(format), "path": .string(absolute(dataset))]
        if let labels { data["labels"] = .array(try listArgument(labels, separator: ",").map { .string($0) }) }
        if let test { data["test"] = .string(absolute(test)) }
        if let testLimit { data["testLimit"] = .int(Int64(testLimit)) }
        params["dataset"] = .object(data)
        if let learningRate { params["learningRate"] = .double(Double(learningRate)) }
        if let saveAs { params["saveAs"] = .string(saveAs) }
        if let lm { params["lm"] = try await session.loadModelID(kind: "gguf", path: lm) }
        let json = options.json, quiet = options.quiet
        let result = try await session.run(Method.optimisePrompt, params: .object(params), onPartial: { step in
            if json { Terminal.json(step); return }
            guard !quiet else { return }
            Terminal.note(describeStep(step))
        }, onCancelled: { best in
            // The daemon returns the best prompt so far; show it as the table, marked as cut short.
            guard best != .null else { return }
            if json { Terminal.json(best) } else { Terminal.line(renderPromptResult(best) + "\n(stopped by Ctrl-C: best so far)") }
        })
        await session.close()
        if json { Terminal.json(result) } else { Terminal.line(renderPromptResult(result)) }
    }
}


func describeStep(_ step: JSONValue) -> String {
    var line = "step \(step["step"]?.intValue ?? 0)/\(step["totalSteps"]?.intValue ?? 0)"
    if let loss = step["loss"]?.doubleValue { line += String(format: "  loss %.4f", loss) }
    if let train = step["trainAccuracy"]?.doubleValue { line += String(format: "  train %.1f%%", 100 * train) }
    if let validation = step["validationAccuracy"]?.doubleValue { line += String(format: "  val %.1f%%", 100 * validation) }
    return line + "  \"\(step["prompt"]?.stringValue ?? "")\""
}

/// The before/after accuracy table, the prompt and where it was saved.
func renderPromptResult(_ r: JSONValue) -> String {
    func percent(_ value: JSONValue?) -> String { value?.doubleValue.map { String(format: "%6.2f%%", 100 * $0) } ?? "      —" }
    var lines = ["", "                 validation     test"]
    for (name, key) in [("zero-shot", "zeroShot"), ("bank ensemble", "bankEnsemble"), ("learned", "learned"),
                        ("nearest words", "nearestWordAccuracy")] where r[key]?["validation"] != nil {
        lines.append(name.padding(toLength: 16, withPad: " ", startingAt: 0) + "  \(percent(r[key]?["validation"]))   \(percent(r[key]?["test"]))")
    }
    lines.append("")
    lines.append("prompt (\(r["method"]?.stringValue ?? "")): \(r["prompt"]?.stringValue ?? "")")
    if let groups = r["nearestTokens"]?.arrayValue, !groups.isEmpty {
        for (index, group) in groups.enumerated() {
            let words = (group.arrayValue ?? []).map { token in
                String(format: "%@ (%.3f)", token["text"]?.stringValue ?? "?", token["distance"]?.doubleValue ?? 0)
            }
            lines.append("nearest tokens\(groups.count > 1 ? " [\(index)]" : ""): " + words.joined(separator: "  "))
        }
    }
    if let fluency = r["fluency"]?.doubleValue { lines.append(String(format: "fluency: %.3f nats/token", fluency)) }
    lines.append(String(format: "steps %d (best %d%@), %.1f s", Int(r["stepsRun"]?.intValue ?? 0), Int(r["bestStep"]?.intValue ?? 0),
                        r["stoppedEarly"] == .bool(true) ? ", stopped early" : "", r["seconds"]?.doubleValue ?? 0))
    if let saved = r["savedTo"]?.stringValue { lines.append("saved to \(saved)") }
    return lines.joined(separator: "\n")
}
