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
        var params: [String: JSONValue] = ["model": .string(model), "texts": .array(texts.map { .string($0) })]
        if let templates { params["templates"] = try templatesArgument(templates) }
        batching.add(to: &params)
        let json = options.json
        _ = try await session.run(Method.encodeText, params: .object(params)) { partial in
            if json {
                Terminal.json(["text": partial["text"] ?? .null, "embedding": partial["embedding"] ?? .null])
            } else {
                Terminal.line("\(partial["text"]?.stringValue ?? "")  \(describeEmbedding(partial["embedding"]))")
            }
        }
        await session.close()
    }
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
        var params: [String: JSONValue] = [
            "clip": .string(model), "image": ["path": .string(absolute(image))], "texts": .array(texts.map { .string($0) }),
            "select": .string(select), "k": .int(Int64(k)), "mass": .double(Double(mass)),
        ]
        if let directory { params["heatmapDir"] = .string(directory) }
        let json = options.json
        let result = try await session.run(Method.attribute, params: .object(params)) { partial in
            if json { Terminal.json(partial) } else { Terminal.line(describeTextAttribution(partial)) }
        }
        await session.close()
        if let directory {
            let page = try HeatmapIndex.write(title: "Attribution of \(texts.count) text(s) on \(image)",
                                              attributions: result["attributions"]?.arrayValue ?? [], in: directory)
            if !json { Terminal.line("contact sheet: \(page)") }
        }
    }
}

/// `"a photo of a cat." → cells 3, 4 (box x 0 y 32 32x32, 61% of the map)`.
func describeTextAttribution(_ a: JSONValue) -> String {
    var line = "\(a["text"]?.stringValue ?? "")"
    if let selection = a["selection"] {
        let cells = (selection["cells"]?.arrayValue ?? []).compactMap { $0.intValue.map(String.init) }.joined(separator: ", ")
        line += String(format: "  → cells %@ (%@, %.0f%% of the map)", cells, describeBox(selection["pixelBox"]),
                       100 * (selection["mass"]?.doubleValue ?? 0))
    } else if let scores = a["scores"]?.arrayValue?.compactMap(\.doubleValue), let peak = scores.indices.max(by: { scores[$0] < scores[$1] }) {
        line += String(format: "  → peak cell %d (%.0f%% of the map)", peak, 100 * scores[peak])
    }
    if let path = a["heatmapPath"]?.stringValue { line += "  heatmap \(path)" }
    return line
}
