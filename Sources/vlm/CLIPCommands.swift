import ArgumentParser
import Foundation
import VLMWire

/// Options for commands that use a CLIP model directory.
struct CLIPOptions: ParsableArguments {
    @Option(help: "An open_clip model directory (open_clip_config.json + open_clip_model.safetensors).")
    var clip: String
}

/// Options of the commands that stream one result per image (or text: encode-text).
struct ImageBatchOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Images (texts) decoded and encoded per step; each one's line prints as soon as its step is done (default: the daemon's, 8).")
    var batchSize: Int?

    func validate() throws {
        try require(batchSize.map { $0 >= 1 } ?? true, "--batch-size must be at least 1")
    }

    func add(to params: inout [String: JSONValue]) {
        if let batchSize { params["batchSize"] = .int(Int64(batchSize)) }
    }
}

extension Session {
    /// Loads a model file or directory (`kind`: clip, gguf, mmproj) and returns its ModelInfo.
    func loadModel(kind: String, path: String, contextLength: Int? = nil) async throws -> JSONValue {
        var params: [String: JSONValue] = ["kind": .string(kind), "path": .string(absolute(path))]
        if let contextLength { params["contextLength"] = .int(Int64(contextLength)) }
        return try await run(Method.modelsLoad, params: .object(params))
    }

    /// Loads a model and returns the id later requests name it by.
    func loadModelID(kind: String, path: String, contextLength: Int? = nil) async throws -> JSONValue {
        try await loadModel(kind: kind, path: path, contextLength: contextLength)["id"] ?? .null
    }

    func loadCLIP(_ directory: String) async throws -> String {
        try await loadModelID(kind: "clip", path: directory).stringValue ?? ""
    }
}

/// "dim 512  [+0.0123, -0.0456, …]": an embedding's size and first values, for a person.
func describeEmbedding(_ embedding: JSONValue?) -> String {
    let values = embedding?.arrayValue ?? []
    let head = values.prefix(4).compactMap { $0.doubleValue.map { String(format: "%+.4f", $0) } }
    return "dim \(values.count)  [\(head.joined(separator: ", ")), …]"
}

func imageInputs(_ paths: [String]) -> JSONValue {
    .array(paths.map { ["path": .string(absolute($0))] })
}

struct EncodeImage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode-image", abstract: "CLIP image embeddings (L2-normalised) for PNG files.")

    @OptionGroup var options: DaemonOptions
    @OptionGroup var clip: CLIPOptions
    @OptionGroup var batching: ImageBatchOptions

    @Flag(help: "Also output the per-position (patch) features.")
    var dense = false

    @Argument(help: "PNG files.")
    var images: [String]

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
    }

    func run() async throws {
        let session = try await Session.start(options)
        let model = try await session.loadCLIP(clip.clip)
        let json = options.json, paths = images
        var params: [String: JSONValue] = ["model": .string(model), "images": imageInputs(paths), "dense": .bool(dense)]
        batching.add(to: &params)
        _ = try await session.run(Method.encodeImage, params: .object(params)) { partial in
            guard let index = partial["index"]?.intValue.map(Int.init) else { return }
            if json {
                var line: [String: JSONValue] = ["image": .string(paths[index])]
                for key in ["imageId", "embedding", "dense"] { line[key] = partial[key] }
                Terminal.json(.object(line))
            } else {
                Terminal.line("\(paths[index])  \(partial["imageId"]?.stringValue ?? "")  \(describeEmbedding(partial["embedding"]))")
            }
        }
        await session.close()
    }
}

struct Classify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Zero-shot CLIP classification of PNG files.")

    @OptionGroup var options: DaemonOptions
    @OptionGroup var clip: CLIPOptions
    @OptionGroup var batching: ImageBatchOptions

    @Option(help: "Comma-separated labels, or a file with one label per line.")
    var labels: String

    @Option(help: "Template bank (cifar, imagenet, simple), one template containing {}, or a file with one template per line.")
    var templates = "a photo of a {}."

    @Option(parsing: .unconditional, help: "How many labels to show per image.")
    var top = 5

    @Option(help: "A prompt saved by optimise-prompt --save-as (replaces --templates).")
    var learnedPrompt: String?

    @Argument(help: "PNG files.")
    var images: [String]

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
    }

    func run() async throws {
        let labelList = try listArgument(labels, separator: ",")
        let session = try await Session.start(options)
        let model = try await session.loadCLIP(clip.clip)
        let json = options.json, paths = images
        var params: [String: JSONValue] = [
            "model": .string(model), "images": imageInputs(paths), "labels": .array(labelList.map { .string($0) }),
            "topK": .int(Int64(top)),
        ]
        if let learnedPrompt { params["learnedPrompt"] = .string(learnedPrompt) } else { params["templates"] = try templatesArgument(templates) }
        batching.add(to: &params)
        _ = try await session.run(Method.classify, params: .object(params)) { partial in
            guard let index = partial["index"]?.intValue.map(Int.init), let probs = partial["probs"]?.arrayValue else { return }
            if json {
                var byLabel: [String: JSONValue] = [:]
                for (label, prob) in zip(labelList, probs) { byLabel[label] = prob }
                Terminal.json(["image": .string(paths[index]), "imageId": partial["imageId"] ?? .null, "probs": .object(byLabel), "top": partial["top"] ?? .null])
            } else {
                var line = paths[index] + ":"
                for entry in partial["top"]?.arrayValue ?? [] {
                    line += String(format: "  %@ %.1f%%", entry["label"]?.stringValue ?? "?", (entry["prob"]?.doubleValue ?? 0) * 100)
                }
                Terminal.line(line)
            }
        }
        await session.close()
    }
}

struct Evaluate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Zero-shot accuracy of a CLIP model on a CIFAR-format dataset.")

    @OptionGroup var options: DaemonOptions
    @OptionGroup var clip: CLIPOptions

    @Option(help: "Dataset file in CIFAR's binary format (e.g. test_batch.bin).")
    var dataset: String

    @Option(help: "Class names: a file with one per line (e.g. batches.meta.txt), or comma-separated.")
    var labels: String

    @Option(help: "cifar10, cifar100 or cifar100-coarse.")
    var format = "cifar10"

    @Option(help: "Template bank, one template containing {}, or a file with one template per line.")
    var templates = "cifar"

    @Option(parsing: .unconditional, help: "Evaluate only the first N records (the whole file otherwise: 10,000 for test_batch.bin).")
    var limit: Int?

    @Option(parsing: .unconditional, help: "Images per forward pass.")
    var batchSize = 32

    func validate() throws {
        try require(limit.map { $0 >= 1 } ?? true, "--limit must be at least 1")
        try require(batchSize >= 1, "--batch-size must be at least 1")
    }

    func run() async throws {
        let labelList = try listArgument(labels, separator: ",")
        let session = try await Session.start(options)
        let model = try await session.loadCLIP(clip.clip)
        var params: [String: JSONValue] = [
            "model": .string(model), "dataset": .string(absolute(dataset)),
            "format": .string(format), "labels": .array(labelList.map { .string($0) }),
            "templates": try templatesArgument(templates), "batchSize": .int(Int64(batchSize)),
        ]
        if let limit { params["limit"] = .int(Int64(limit)) }
        let json = options.json
        let latest = LatestValue()
        let result = try await session.run(Method.evaluateDataset, params: .object(params), onPartial: { partial in
            latest.value = partial
            if json { Terminal.json(partial) }
        }, onCancelled: { _ in
            if !json, let sofar = latest.value { Terminal.line(renderEvaluationSoFar(sofar)) }
        })
        await session.close()
        if json { Terminal.json(result); return }
        Terminal.line(renderEvaluation(result, labels: labelList))
    }
}

/// The last partial result of an evaluation cut short.
func renderEvaluationSoFar(_ partial: JSONValue) -> String {
    String(format: "accuracy so far %.2f%%  (%d of %d images)", 100 * (partial["accuracy"]?.doubleValue ?? 0),
           Int(partial["processed"]?.intValue ?? 0), Int(partial["total"]?.intValue ?? 0))
}

/// Holds the latest streamed value, for printing when a request is cut short.
final class LatestValue: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: JSONValue?
    var value: JSONValue? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// The accuracy table and confusion matrix a person reads.
func renderEvaluation(_ result: JSONValue, labels: [String]) -> String {
    func number(_ value: JSONValue?) -> Double { value?.doubleValue ?? 0 }
    var lines = [String(format: "accuracy %.2f%%  top-5 %.2f%%  (%d images, %d templates, %.1f s)",
                        100 * number(result["accuracy"]), 100 * number(result["top5Accuracy"]),
                        Int(number(result["count"])), Int(number(result["templates"])), number(result["seconds"]))]
    let width = max(8, labels.map(\.count).max() ?? 0)
    if let perClass = result["perClassAccuracy"]?.arrayValue, let rows = result["confusion"]?.arrayValue {
        lines.append("")
        lines.append("class".padding(toLength: width, withPad: " ", startingAt: 0) + "  acc%   confusion (predicted →)")
        for (index, label) in labels.enumerated() where index < rows.count {
            let cells = (rows[index].arrayValue ?? []).map { String(format: "%5d", Int(number($0))) }.joined()
            lines.append(label.padding(toLength: width, withPad: " ", startingAt: 0)
                         + String(format: "  %5.1f ", 100 * number(perClass[index])) + cells)
        }
    }
    return lines.joined(separator: "\n")
}

/// A list given inline (comma-separated) or as a file (one item per line).
func listArgument(_ text: String, separator: Character) throws -> [String] {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: text, isDirectory: &isDirectory), !isDirectory.boolValue {
        let contents = try String(contentsOfFile: text, encoding: .utf8)
        return contents.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
    let items = text.split(separator: separator).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    guard !items.isEmpty else { throw ValidationError("empty list: \(text)") }
    return items
}

/// Templates: a file becomes a list; anything else is passed as is (bank name or one template).
func templatesArgument(_ text: String) throws -> JSONValue {
    if FileManager.default.fileExists(atPath: text) {
        return .array(try listArgument(text, separator: "\n").map { .string($0) })
    }
    return .string(text)
}
