import ArgumentParser
import Foundation
import VLMWire

struct EncodeText: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode-text", abstract: "CLIP text embeddings (L2-normalised), optionally as template ensembles.")

    @OptionGroup var options: DaemonOptions
    @OptionGroup var clip: CLIPOptions
    @OptionGroup var batching: ImageBatchOptions

    @Option(help: "Embed each text as the ensemble over templates: a bank (cifar, imagenet, simple), one template containing {}, or a file with one template per line. Without it each text is embedded as it is.")
    var templates: String?

    @Argument(help: "Texts to embed.")
    var texts: [String]

    func validate() throws {
        guard !texts.isEmpty else { throw ValidationError("give at least one text") }
    }

    func run() async throws {
        let session = try await Session.start(options)
        let model = try await session.loadCLIP(clip.clip)
        let params = EncodeTextParams(
            model: model, texts: texts, templates: try templates.map(templatesArgument), batchSize: batching.batchSize)
        let json = options.json
        _ = try await session.send(EncodeTextRequest.self, params, onPartial: { encoded in
            if json {
                Terminal.json(EncodedTextLine(text: encoded.text, embedding: encoded.embedding))
            } else {
                Terminal.line("\(encoded.text)  \(describeEmbedding(encoded.embedding))")
            }
        })
        await session.close()
    }
}

/// What `vlm encode-text --json` prints per text.
struct EncodedTextLine: Encodable {
    let text: String
    let embedding: [Float]
}

struct Attribute: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Which image patches each text relates to: CLIP attribution maps and the patches selected, as visual reasoning computes them per step, without a language model.")

    @OptionGroup var options: DaemonOptions
    @OptionGroup var clip: CLIPOptions

    @Option(help: "The PNG image.")
    var image: String

    @Option(help: "Patch selection: topk, box or off.")
    var select = "box"

    @Option(parsing: .unconditional, help: "Cells chosen by --select topk.")
    var k = 4

    @Option(parsing: .unconditional, help: "Share of the map the --select box covers, in (0, 1].")
    var mass: Float = 0.5

    @Option(help: "Write a heatmap PNG per text and an index.html contact sheet into this directory.")
    var heatmaps: String?

    @Option(help: "A saved selector (train-selector --save-as): its learned maps instead of the plain similarity.")
    var selector: String?

    @Option(parsing: .unconditional, help: "Side in pixels the tower sees the image at (default: the selector's, else the model's; ModifiedResNet: a multiple of 32).")
    var resolution: Int?

    @Argument(help: "Texts to attribute.")
    var texts: [String]

    func validate() throws {
        guard !texts.isEmpty else { throw ValidationError("give at least one text") }
        try require(["topk", "box", "off"].contains(select), "--select must be topk, box or off")
    }

    func run() async throws {
        let directory = try heatmaps.map(prepareHeatmapDirectory)
        let session = try await Session.start(options)
        let model = try await session.loadCLIP(clip.clip)
        let params = AttributeParams(
            clip: model, image: ImageInput(path: absolute(image)), texts: texts, select: select, k: k, mass: mass, heatmapDir: directory,
            selector: selector, resolution: resolution)
        let json = options.json
        let result = try await session.send(AttributeRequest.self, params, onPartial: { attribution in
            if json { Terminal.json(attribution) } else { Terminal.line(describeTextAttribution(attribution)) }
        })
        await session.close()
        if let directory {
            let page = try HeatmapIndex.write(title: "Attribution of \(texts.count) text(s) on \(image)",
                                              attributions: result.attributions, in: directory)
            if !json { Terminal.line("contact sheet: \(page)") }
        }
    }
}

/// `"a photo of a cat." → cells 3, 4 (box x 0 y 32 32x32, 61% of the map)`.
func describeTextAttribution(_ a: AttributionInfo) -> String {
    var line = a.text
    if let selection = a.selection {
        let cells = selection.cells.map(String.init).joined(separator: ", ")
        line += String(format: "  → cells %@ (%@, %.0f%% of the map)", cells, describeBox(selection.pixelBox), 100 * Double(selection.mass))
    } else if let peak = a.scores.indices.max(by: { a.scores[$0] < a.scores[$1] }) {
        line += String(format: "  → peak cell %d (%.0f%% of the map)", peak, 100 * Double(a.scores[peak]))
    }
    if let path = a.heatmapPath { line += "  heatmap \(path)" }
    return line
}
