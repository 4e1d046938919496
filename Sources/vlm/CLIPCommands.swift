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
}

/// The image tower's arithmetic, for the commands that encode images.
struct ImagePrecisionOption: ParsableArguments {
    @Option(help: "Image tower arithmetic: fp32 (the default, exact) or bf16 (bf16 weights and activations, fp32 sums; faster, offered only on CPUs with AVX-512 BF16).")
    var precision: String?

    func validate() throws {
        try require(precision.map { ["fp32", "bf16"].contains($0) } ?? true, "--precision must be fp32 or bf16")
    }
}

extension Session {
    /// Loads a model file or directory (`kind`: clip, gguf, mmproj) and returns its ModelInfo.
    func loadModel(kind: String, path: String, contextLength: Int? = nil) async throws -> ModelInfo {
        try await send(ModelsLoadRequest.self, ModelsLoadParams(kind: kind, path: absolute(path), contextLength: contextLength))
    }

    /// Loads a model and returns the id later requests name it by.
    func loadModelID(kind: String, path: String, contextLength: Int? = nil) async throws -> String {
        try await loadModel(kind: kind, path: path, contextLength: contextLength).id
    }

    func loadCLIP(_ directory: String) async throws -> String {
        try await loadModelID(kind: "clip", path: directory)
    }
}

/// "dim 512  [+0.0123, -0.0456, …]": an embedding's size and first values, for a person.
func describeEmbedding(_ embedding: [Float]) -> String {
    let head = embedding.prefix(4).map { String(format: "%+.4f", Double($0)) }
    return "dim \(embedding.count)  [\(head.joined(separator: ", ")), …]"
}

func imageInputs(_ paths: [String]) -> [ImageInput] {
    paths.map { ImageInput(path: absolute($0)) }
}

/// What `vlm encode-image --json` prints per image.
struct EncodedImageLine: Encodable {
    let image: String
    let imageId: String
    let embedding: [Float]
    let dense: DenseFeatures?
}

/// What `vlm classify --json` prints per image: probabilities by label.
struct ClassificationLine: Encodable {
    let image: String
    let imageId: String
    let probs: [String: Float]
    let top: [LabelScore]
}

struct EncodeImage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode-image", abstract: "CLIP image embeddings (L2-normalised) for PNG files.")

    @OptionGroup var options: DaemonOptions
    @OptionGroup var clip: CLIPOptions
    @OptionGroup var batching: ImageBatchOptions
    @OptionGroup var arithmetic: ImagePrecisionOption

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
        let params = EncodeImageParams(model: model, images: imageInputs(paths), dense: dense, batchSize: batching.batchSize,
                                       precision: arithmetic.precision)
        _ = try await session.send(EncodeImageRequest.self, params, onPartial: { image in
            guard paths.indices.contains(image.index) else { return }
            if json {
                Terminal.json(EncodedImageLine(image: paths[image.index], imageId: image.imageId, embedding: image.embedding, dense: image.dense))
            } else {
                Terminal.line("\(paths[image.index])  \(image.imageId)  \(describeEmbedding(image.embedding))")
            }
        })
        await session.close()
    }
}

struct Classify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Zero-shot CLIP classification of PNG files.")

    @OptionGroup var options: DaemonOptions
    @OptionGroup var clip: CLIPOptions
    @OptionGroup var batching: ImageBatchOptions
    @OptionGroup var arithmetic: ImagePrecisionOption

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
        let params = ClassifyParams(
            model: model, images: imageInputs(paths), labels: labelList,
            templates: learnedPrompt == nil ? try templatesArgument(templates) : nil, topK: top, learnedPrompt: learnedPrompt,
            batchSize: batching.batchSize, precision: arithmetic.precision)
        _ = try await session.send(ClassifyRequest.self, params, onPartial: { result in
            guard paths.indices.contains(result.index) else { return }
            if json {
                let byLabel = Dictionary(zip(labelList, result.probs), uniquingKeysWith: { _, last in last })
                Terminal.json(ClassificationLine(image: paths[result.index], imageId: result.imageId, probs: byLabel, top: result.top))
            } else {
                var line = paths[result.index] + ":"
                for entry in result.top { line += String(format: "  %@ %.1f%%", entry.label, Double(entry.prob) * 100) }
                Terminal.line(line)
            }
        })
        await session.close()
    }
}

struct Evaluate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Zero-shot accuracy of a CLIP model on a CIFAR-format dataset or a labelled image list.")

    @OptionGroup var options: DaemonOptions
    @OptionGroup var clip: CLIPOptions
    @OptionGroup var arithmetic: ImagePrecisionOption

    @Option(help: "Dataset file in CIFAR's binary format (e.g. test_batch.bin), or an image list (--format list).")
    var dataset: String

    @Option(help: "Class names in label order: a file with one per line (e.g. batches.meta.txt), or comma-separated. Required for CIFAR files; a list's own labels are used when omitted.")
    var labels: String?

    @Option(help: "cifar10, cifar100, cifar100-coarse, or list (lines 'path<TAB>label', paths relative to the list).")
    var format = "cifar10"

    @Option(help: "Template bank, one template containing {}, or a file with one template per line.")
    var templates = "cifar"

    @Option(parsing: .unconditional, help: "Evaluate only the first N records (the whole file otherwise: 10,000 for test_batch.bin).")
    var limit: Int?

    @Option(parsing: .unconditional, help: "Images per step (the daemon's default, measured fastest, when omitted).")
    var batchSize: Int?

    func validate() throws {
        try require(limit.map { $0 >= 1 } ?? true, "--limit must be at least 1")
        try require(batchSize.map { $0 >= 1 } ?? true, "--batch-size must be at least 1")
    }

    func run() async throws {
        let labelList = try labels.map { try listArgument($0, separator: ",") }
        let session = try await Session.start(options)
        let model = try await session.loadCLIP(clip.clip)
        let params = EvaluateParams(
            model: model, dataset: absolute(dataset), format: format, labels: labelList, templates: try templatesArgument(templates),
            limit: limit, batchSize: batchSize, precision: arithmetic.precision)
        let json = options.json
        let latest = LatestValue<EvaluatePartial>()
        let result = try await session.send(EvaluateDatasetRequest.self, params, onPartial: { partial in
            latest.value = partial
            if json { Terminal.json(partial) }
        }, onCancelled: { _ in
            if !json, let sofar = latest.value { Terminal.line(renderEvaluationSoFar(sofar)) }
        })
        await session.close()
        if json { Terminal.json(result); return }
        Terminal.line(renderEvaluation(result))
    }
}

/// The last partial result of an evaluation cut short.
func renderEvaluationSoFar(_ partial: EvaluatePartial) -> String {
    String(format: "accuracy so far %.2f%%  (%d of %d images)", 100 * partial.accuracy, partial.processed, partial.total)
}

/// Holds the latest streamed value, for printing when a request is cut short.
final class LatestValue<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value?
    var value: Value? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// The accuracy table and confusion matrix a person reads.
func renderEvaluation(_ result: EvaluateResult) -> String {
    let labels = result.labels
    var lines = [String(format: "accuracy %.2f%%  top-5 %.2f%%  (%d images, %d templates, %.1f s)",
                        100 * result.accuracy, 100 * result.top5Accuracy, result.count, result.templates, result.seconds)]
    let width = max(8, labels.map(\.count).max() ?? 0)
    lines.append("")
    lines.append("class".padding(toLength: width, withPad: " ", startingAt: 0) + "  acc%   confusion (predicted →)")
    for (index, label) in labels.enumerated() where index < result.confusion.count && index < result.perClassAccuracy.count {
        let cells = result.confusion[index].map { String(format: "%5d", $0) }.joined()
        lines.append(label.padding(toLength: width, withPad: " ", startingAt: 0)
                     + String(format: "  %5.1f ", 100 * result.perClassAccuracy[index]) + cells)
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
func templatesArgument(_ text: String) throws -> TemplatesParam {
    if FileManager.default.fileExists(atPath: text) {
        return .list(try listArgument(text, separator: "\n"))
    }
    return .single(text)
}
