import ArgumentParser
import Foundation
import VLMWire

struct TrainSelector: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-selector",
        abstract: "Train a selection head on a CLIP model's frozen dense features, from {image, text, box} JSON lines.")

    @OptionGroup var options: DaemonOptions
    @OptionGroup var clip: CLIPOptions

    @Argument(help: "JSON lines: {\"image\", \"text\", \"box\": [x, y, width, height]} or {\"image\", \"text\", \"map\": [...]}.")
    var examples: String

    @Option(help: "Held-out examples in the same format (default: hold out --validation-fraction of the images).")
    var validation: String?

    @Option(parsing: .unconditional, help: "Fraction of images held out when --validation is not given.")
    var validationFraction: Float?

    @Option(parsing: .unconditional, help: "Optimiser (Adam) steps.")
    var steps = 300

    @Option(parsing: .unconditional, help: "Learning rate.")
    var learningRate: Float?

    @Option(parsing: .unconditional, help: "Examples per step (0: all).")
    var batchSize: Int?

    @Option(parsing: .unconditional, help: "Random seed for the hold-out draw and the batches.")
    var seed: UInt64 = 0

    @Option(parsing: .unconditional, help: "0: score the model's dense cells; G: score the pooled embeddings of a GxG grid of crops.")
    var cropGrid: Int?

    @Option(parsing: .unconditional, help: "Side in pixels the tower sees each image at for the dense cells (default: the model's; ModifiedResNet: a multiple of 32).")
    var resolution: Int?

    @Option(help: "Save the selector under this name (attribute --selector NAME, evaluate-selector --selector NAME).")
    var saveAs: String?

    func validate() throws {
        try require(steps >= 1, "--steps must be at least 1")
        try require(learningRate.map { $0 > 0 } ?? true, "--learning-rate must be > 0")
    }

    func run() async throws {
        let session = try await Session.start(options)
        let clipID = try await session.loadCLIP(clip.clip)
        let params = SelectorTrainParams(
            clip: clipID, examples: absolute(examples), validation: validation.map(absolute), validationFraction: validationFraction,
            saveAs: saveAs, steps: steps, learningRate: learningRate, batchSize: batchSize, seed: seed,
            cropGrid: cropGrid, resolution: resolution)
        let json = options.json, quiet = options.quiet
        let result = try await session.send(SelectorTrainRequest.self, params, onPartial: { step in
            if json { Terminal.json(step); return }
            guard !quiet, let held = step.validationLoss else { return }
            Terminal.note(String(format: "step %d/%d  loss %.4f  val loss %.4f  val top cell %.1f%%", step.step, step.totalSteps, step.loss,
                                 held, 100 * (step.validationTopCell ?? 0)))
        }, onCancelled: { best in
            guard best != .null else { return }
            if json { return Terminal.json(best) }
            guard let best = try? JSONCoding.convert(best, to: SelectorTrainResult.self) else { return }
            Terminal.line(renderSelectorTraining(best) + "\n(stopped by Ctrl-C: best so far)")
        })
        await session.close()
        if json { Terminal.json(result) } else { Terminal.line(renderSelectorTraining(result)) }
    }
}

struct EvaluateSelector: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate-selector",
        abstract: "Pointing accuracy and mean box IoU on labelled {image, text, box} JSON lines: the plain similarity map and a selector.")

    @OptionGroup var options: DaemonOptions
    @OptionGroup var clip: CLIPOptions

    @Argument(help: "JSON lines with boxes, as train-selector reads them.")
    var examples: String

    @Option(help: "A saved selector's name (without it, only the plain similarity map).")
    var selector: String?

    @Option(parsing: .unconditional, help: "Mass the predicted box must hold, for the IoU (default 0.5).")
    var mass: Float?

    @Option(parsing: .unconditional, help: "Side in pixels the tower sees each image at for the plain map (default: the selector's, else the model's).")
    var resolution: Int?

    func run() async throws {
        let session = try await Session.start(options)
        let clipID = try await session.loadCLIP(clip.clip)
        let params = SelectorEvaluateParams(clip: clipID, examples: absolute(examples), selector: selector, mass: mass, resolution: resolution)
        let json = options.json, quiet = options.quiet
        let result = try await session.send(SelectorEvaluateRequest.self, params, onPartial: { tally in
            if json { Terminal.json(tally); return }
            guard !quiet else { return }
            Terminal.note(String(format: "%d queries: similarity %.1f%%", tally.queries, 100 * tally.similarity.pointing)
                          + (tally.learned.map { String(format: ", selector %.1f%%", 100 * $0.pointing) } ?? ""))
        })
        await session.close()
        if json { Terminal.json(result) } else { Terminal.line(renderSelectorEvaluation(result)) }
    }
}

func renderSelectorTraining(_ r: SelectorTrainResult) -> String {
    var lines = [String(format: "validation loss %.4f (plain similarity map) -> %.4f (best, step %d of %d)",
                        r.initialValidationLoss, r.bestValidationLoss, r.bestStep, r.stepsRun),
                 String(format: "%d training and %d held-out examples over %d images, temperature %.4f, %.1f s",
                        r.trainExamples, r.validationExamples, r.images, Double(r.temperature), r.seconds)]
    if let saved = r.savedTo { lines.append("saved to \(saved)") }
    return lines.joined(separator: "\n")
}

func renderSelectorEvaluation(_ r: SelectorEvaluation) -> String {
    func row(_ name: String, _ f: SelectionFigures) -> String {
        name.padding(toLength: 27, withPad: " ", startingAt: 0) + String(format: "%7.2f%%   %6.3f", 100 * f.pointing, f.meanIoU)
    }
    func side(_ resolution: Int) -> String { resolution == 0 ? " (crops)" : " (\(resolution) px)" }
    var lines = ["\(r.queries) queries on \(r.images) images", "                           pointing   box IoU",
                 row("similarity map" + side(r.resolution), r.similarity)]
    if let learned = r.learned { lines.append(row("selector \(r.selector ?? "")" + side(r.learnedResolution ?? 0), learned)) }
    return lines.joined(separator: "\n")
}

struct DistilSelector: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distil-selector",
        abstract: "Reason about {image, question} lines with a GGUF model and CLIP, then train a selector on the steps' maps.")

    @OptionGroup var options: DaemonOptions
    @OptionGroup var clip: CLIPOptions

    @Argument(help: "JSON lines: {\"image\", \"question\"}.")
    var questions: String

    @Option(help: "The GGUF language model that reasons.")
    var lm: String

    @Option(parsing: .unconditional, help: "Context length for the language model.")
    var contextLength: Int?

    @Option(parsing: .unconditional, help: "Optimiser (Adam) steps.")
    var steps = 300

    @Option(parsing: .unconditional, help: "Random seed for the runs, the hold-out draw and the batches.")
    var seed: UInt64 = 0

    @Option(help: "Save the selector under this name.")
    var saveAs: String?

    func run() async throws {
        let session = try await Session.start(options)
        let clipID = try await session.loadCLIP(clip.clip)
        let lmID = try await session.loadModelID(kind: "gguf", path: lm, contextLength: contextLength)
        let params = SelectorDistilParams(clip: clipID, lm: lmID, examples: absolute(questions), saveAs: saveAs, steps: steps, seed: seed)
        let json = options.json, quiet = options.quiet
        let result = try await session.send(SelectorDistilRequest.self, params, onPartial: { step in
            if json { Terminal.json(step); return }
            guard !quiet, let held = step.validationLoss else { return }
            Terminal.note(String(format: "step %d/%d  loss %.4f  val loss %.4f", step.step, step.totalSteps, step.loss, held))
        })
        await session.close()
        if json { Terminal.json(result) } else {
            Terminal.line("\(result.recorded) of \(result.questions) reasoning runs gave maps\n" + renderSelectorTraining(result.training))
        }
    }
}
