import Foundation
import VLMCLIP
import VLMImage
import VLMPromptLearning
import VLMTensor
import VLMWire

/// encode-image, classify and dataset/evaluate.
///
/// encode-image and classify stream: images are read, encoded and answered `batchSize` at a time
/// (one partial result per image as soon as its batch is done), and never more than one decoded
/// image is held at once, so a long list neither waits for its last image nor needs memory for all.
func registerCLIPHandlers(_ table: inout HandlerTable, services: Services) {
    table.register(EncodeImageRequest.self) { params, context in
        let clip = try await services.clipModel(params.model)
        let sources = try imageSources(params.images)
        let batchSize = try imageBatchSize(params.batchSize)
        let dense = params.dense ?? false
        let precision = try imagePrecision(params.precision)
        let runtime = services.clip, decoder = services.pngDecoder
        let progress = await context.beginProgress(title: "Encoding \(sources.count) image(s) with \(clip.id)")
        let images = try await streamBatches(sources, size: batchSize, context: context, progress: progress) { batch, compute in
            try runtime.stageBatch(batch, with: clip, dense: dense, precision: precision, decoder: decoder, compute: compute)
        } process: { staged, compute in
            try runtime.encodeBatch(staged, with: clip, dense: dense, precision: precision, compute: compute)
        } soFar: { done in
            EncodeImageResult(model: clip.id, images: done)
        }
        return EncodeImageResult(model: clip.id, images: images)
    }

    table.register(ClassifyRequest.self) { params, context in
        let clip = try await services.clipModel(params.model)
        let labels = try validatedLabels(params.labels, field: "params.labels")
        let topK = params.topK ?? 5
        guard topK >= 1 else { throw RPCError.invalidParams("params.topK: expected an integer ≥ 1") }
        let sources = try imageSources(params.images)
        let batchSize = try imageBatchSize(params.batchSize)
        let precision = try imagePrecision(params.precision)
        let runtime = services.clip, decoder = services.pngDecoder
        if params.learnedPrompt != nil, params.templates != nil {
            throw RPCError.invalidParams("params: give 'templates' or 'learnedPrompt', not both")
        }
        let learned = try params.learnedPrompt.map { name in
            let url = try services.learnedPromptURL(name: name, field: "params.learnedPrompt")
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw RPCError.invalidParams("params.learnedPrompt: no learned prompt '\(name)' in \(url.deletingLastPathComponent().path)")
            }
            return try LearnedPrompt.load(from: url)
        }
        let templates = try learned?.templates ?? resolveTemplates(params.templates, field: "params.templates")
        let progress = await context.beginProgress(title: "Classifying \(sources.count) image(s) with \(clip.id)")
        let (perTemplate, classifier) = try await context.compute { compute in
            if let learned {
                let classifier = try learned.classifierWeights(clip: clip.model, tokenizer: runtime.tokenizer(), classNames: labels,
                                                               compute: compute)
                return ([[[Float]]](), classifier)
            }
            let text = try runtime.classTemplateEmbeddings(labels: labels, templates: templates, clip: clip, compute: compute)
            return (text, try ZeroShotClassifier(classNames: labels, templateEmbeddings: text))
        }
        let perTemplateWanted = params.perTemplate == true && !perTemplate.isEmpty
        let results = try await streamBatches(sources, size: batchSize, context: context, progress: progress) { batch, compute in
            try runtime.stageBatch(batch, with: clip, dense: false, precision: precision, decoder: decoder, compute: compute)
        } process: { staged, compute in
            try runtime.encodeBatch(staged, with: clip, dense: false, precision: precision, compute: compute).map { image in
                let probs = softmax(classifier.logits(imageEmbeddings: [image.embedding], logitScale: clip.model.logitScale)[0])
                var item = ImageClassification(index: image.index, imageId: image.imageId, probs: probs,
                                               top: topLabels(probs, labels: labels, k: topK))
                if perTemplateWanted {
                    item.perTemplate = templates.indices.map { t in
                        let logits = labels.indices.map { c in clip.model.logitScale * dot(image.embedding, perTemplate[c][t]) }
                        return TemplateScores(template: templates[t], probs: softmax(logits))
                    }
                }
                return item
            }
        } soFar: { done in
            ClassifyResult(model: clip.id, labels: labels, templates: templates, results: done)
        }
        return ClassifyResult(model: clip.id, labels: labels, templates: templates, results: results)
    }

    table.register(EvaluateDatasetRequest.self) { params, context in
        try await evaluateDataset(params, context: context, services: services)
    }
}

/// Runs `process` over a request's inputs (images, texts: `unit` names them in progress messages)
/// `size` at a time on a compute thread, sending each result as a partial as soon as its batch is done.
/// `stage` prepares batch i + 1 (reads and decodes its images) while `process` handles batch i
/// (`runStagedSteps`). A cancelled request still gets its one -32800 reply, whose data is
/// `soFar(results done)`, as generate and optimise-prompt return their best so far.
func streamBatches<Source: Sendable, Staged: Sendable, Item: Encodable & Sendable, Summary: Encodable & Sendable>(
    _ sources: [Source], size: Int, unit: String = "images", context: RequestContext, progress: ProgressReporter,
    stage: @escaping @Sendable (ArraySlice<Source>, ComputeContext) throws -> Staged,
    process: @escaping @Sendable (Staged, ComputeContext) throws -> [Item],
    soFar: ([Item]) -> Summary
) async throws -> [Item] {
    var done: [Item] = []
    let batch: @Sendable (Int) -> ArraySlice<Source> = { step in sources[step * size..<min((step + 1) * size, sources.count)] }
    do {
        try await runStagedSteps(count: (sources.count + size - 1) / size, compute: context.computeContext, stage: { step, compute in
            try stage(batch(step), compute)
        }, process: process, deliver: { _, items in
            for item in items { await context.sendPartial(item) }
            done += items
            await progress.report(fraction: Double(done.count) / Double(sources.count), message: "\(done.count)/\(sources.count) \(unit)")
        })
    } catch where context.cancellation.isCancelled {
        await progress.end(message: "cancelled")
        throw ComputeCancelled(partial: soFar(done))
    } catch {
        await progress.end(message: "failed")
        throw error
    }
    await progress.end()
    return done
}

/// `streamBatches` for inputs that need no staging (texts): each batch goes to `process` as it is.
func streamBatches<Source: Sendable, Item: Encodable & Sendable, Summary: Encodable & Sendable>(
    _ sources: [Source], size: Int, unit: String = "images", context: RequestContext, progress: ProgressReporter,
    process: @escaping @Sendable (ArraySlice<Source>, ComputeContext) throws -> [Item],
    soFar: ([Item]) -> Summary
) async throws -> [Item] {
    try await streamBatches(sources, size: size, unit: unit, context: context, progress: progress,
                            stage: { batch, _ in batch }, process: process, soFar: soFar)
}

/// How many images encode-image and classify read and encode per step (default 8).
func imageBatchSize(_ requested: Int?) throws -> Int {
    let size = requested ?? 8
    guard (1...256).contains(size) else { throw RPCError.invalidParams("params.batchSize: expected an integer in 1...256") }
    return size
}

/// The image tower's arithmetic a request asks for (default fp32); bf16 only on CPUs with AVX-512 BF16.
func imagePrecision(_ requested: String?) throws -> MatrixPrecision {
    guard let requested else { return .fp32 }
    guard let precision = MatrixPrecision(rawValue: requested) else {
        throw RPCError.invalidParams("params.precision: expected \"fp32\" or \"bf16\", got \"\(requested)\"")
    }
    guard BF16.availablePrecisions.contains(precision) else {
        throw RPCError.invalidParams(
            "params.precision: \"\(requested)\" needs a CPU with AVX-512 BF16, which this one lacks (initialize lists the precisions offered in capabilities.experimental.imagePrecisions)")
    }
    return precision
}

/// One image of a request, its input checked but not read yet.
struct ImageSource: Sendable {
    let index: Int
    let input: ImageInput
}

/// Checks every image input's shape (exactly one of path, png, imageId) before any is read.
func imageSources(_ inputs: [ImageInput]) throws -> [ImageSource] {
    guard !inputs.isEmpty else { throw RPCError.invalidParams("params.images: expected at least one image") }
    return try inputs.enumerated().map { index, input in
        let given = [input.path != nil, input.png != nil, input.imageId != nil].filter { $0 }.count
        guard given == 1 else {
            throw RPCError.invalidParams("params.images[\(index)]: expected exactly one of 'path', 'png' (base64) or 'imageId'")
        }
        return ImageSource(index: index, input: input)
    }
}

/// Reads one checked image input: pixels with their content id, or only the id to look up.
func readImage(_ source: ImageSource, decoder: PNGDecoder) throws -> RequestImage {
    let input = source.input
    if let imageId = input.imageId { return RequestImage(imageId: imageId, image: nil) }
    let image = if let path = input.path {
        try decoder.decode(contentsOf: path)
    } else {
        try decoder.decode(base64: input.png ?? "", input: "params.images[\(source.index)].png")
    }
    return RequestImage(imageId: CLIPRuntime.imageId(for: image), image: image)
}

/// One image of an encode-image or classify batch, read ahead of the tower (`CLIPRuntime.stageBatch`).
struct StagedSource: Sendable {
    let index: Int
    let imageId: String
    /// Nil for an image named by its `imageId`, which is looked up when its batch is encoded.
    let image: CLIPRuntime.StagedImage?
}

extension CLIPRuntime {
    /// Reads one batch of a request's images, each reduced to its preprocessed pixels (none for a
    /// cache hit unless `dense` needs them) before the next is read, so one decoded image at most is
    /// held at a time.
    func stageBatch(
        _ sources: ArraySlice<ImageSource>, with clip: LoadedCLIP, dense: Bool, precision: MatrixPrecision = .fp32,
        decoder: PNGDecoder, compute: ComputeContext
    ) throws -> [StagedSource] {
        try sources.map { source in
            try compute.checkCancellation()
            let request = try readImage(source, decoder: decoder)
            guard let image = request.image else {
                if dense {
                    throw RPCError.invalidParams("params.images[\(source.index)]: dense features need the image itself, not an imageId")
                }
                return StagedSource(index: source.index, imageId: request.imageId, image: nil)
            }
            return StagedSource(index: source.index, imageId: request.imageId, image: stage(image, clip: clip, precision: precision, keepPixels: dense))
        }
    }

    /// Encodes one staged batch: cache hits are not encoded again; the misses go through the image
    /// tower in one forward pass (with `dense`, every image does: the dense features come from it).
    func encodeBatch(_ batch: [StagedSource], with clip: LoadedCLIP, dense: Bool, precision: MatrixPrecision = .fp32,
                     compute: ComputeContext) throws -> [EncodedImage] {
        let images = try batch.map { source in
            if let image = source.image { return image }
            guard let hit = cachedEmbedding(of: source.imageId, clip: clip, precision: precision) else {
                throw notCached(source.imageId, index: source.index, clip: clip, precision: precision)
            }
            return StagedImage(prepared: PreparedImage(imageId: source.imageId, width: hit.width, height: hit.height, pixels: []), hit: hit)
        }
        let encoded = { (slot: Int, embedding: [Float], cached: Bool) in
            let image = images[slot].prepared
            return EncodedImage(index: batch[slot].index, imageId: image.imageId, width: image.width, height: image.height,
                                cached: cached, embedding: embedding)
        }
        guard dense else {
            return try embed(staged: images, with: clip, precision: precision, compute: compute).enumerated()
                .map { encoded($0, $1.embedding, $1.cached) }
        }
        let hits = hits(images, clip: clip, precision: precision)
        let pass = try clip.model.encodeImagesWithDense(images.flatMap(\.prepared.pixels), count: images.count, precision: precision,
                                                        compute: compute)
        let misses = images.indices.filter { hits[$0] == nil }
        cache(misses.map { images[$0].prepared }, misses.map { pass.embeddings[$0] }, clip: clip, precision: precision)
        let maps = pass.dense
        return images.indices.map { slot in
            var item = encoded(slot, hits[slot]?.embedding ?? pass.embeddings[slot], hits[slot] != nil)
            item.dense = DenseFeatures(gridHeight: maps.gridHeight, gridWidth: maps.gridWidth, features: maps.features[slot])
            return item
        }
    }
}

extension CLIPRuntime {
    /// `[class][template]` normalised text embeddings, through the text cache.
    func classTemplateEmbeddings(labels: [String], templates: [String], clip: LoadedCLIP, compute: ComputeContext) throws -> [[[Float]]] {
        let prompts = labels.flatMap { label in templates.map { PromptTemplates.fill($0, with: label) } }
        let flat = try embed(prompts: prompts, with: clip, compute: compute)
        return labels.indices.map { c in Array(flat[c * templates.count..<(c + 1) * templates.count]) }
    }
}

/// A decoded request image: either pixels (with their content id) or just an id to look up.
struct RequestImage: Sendable {
    let imageId: String
    let image: RGBImage?
}

extension Services {
    /// A PNG decoder with the daemon's pixel budget.
    var pngDecoder: PNGDecoder { PNGDecoder(pixelBudget: configuration.maxImagePixels) }

    /// Reads every image of a request at once (for requests about one image; lists stream through
    /// `CLIPRuntime.encodeBatch`).
    func decodeImages(_ inputs: [ImageInput]) throws -> [RequestImage] {
        let decoder = pngDecoder
        return try imageSources(inputs).map { try readImage($0, decoder: decoder) }
    }
}

func validatedLabels(_ labels: [String], field: String) throws -> [String] {
    guard !labels.isEmpty else { throw RPCError.invalidParams("\(field): expected at least one label") }
    if let blank = labels.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
        throw RPCError.invalidParams("\(field)[\(blank)]: labels must not be empty")
    }
    return labels
}

func resolveTemplates(_ templates: TemplatesParam?, field: String) throws -> [String] {
    switch templates {
    case nil:
        return ["a photo of a {}."]
    case .single(let text):
        if let bank = PromptTemplates.named(text) { return bank }
        guard text.contains("{}") else {
            throw RPCError.invalidParams("\(field): '\(text)' is neither a template bank (cifar, imagenet, simple) nor a template containing {}")
        }
        return [text]
    case .list(let list):
        guard !list.isEmpty else { throw RPCError.invalidParams("\(field): expected at least one template") }
        if let bad = list.firstIndex(where: { !$0.contains("{}") }) {
            throw RPCError.invalidParams("\(field)[\(bad)]: a template must contain {} where the label goes")
        }
        return list
    }
}

func softmax(_ logits: [Float]) -> [Float] {
    var values = logits
    values.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: $0.count) }
    return values
}

func topLabels(_ probs: [Float], labels: [String], k: Int) -> [LabelScore] {
    probs.indices.sorted { probs[$0] > probs[$1] }.prefix(k).map { LabelScore(label: labels[$0], index: $0, prob: probs[$0]) }
}
