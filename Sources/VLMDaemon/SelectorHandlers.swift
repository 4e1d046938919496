import Foundation
import Synchronization
import VLMCLIP
import VLMImage
import VLMReasoning
import VLMSelection
import VLMTensor
import VLMWire

extension SelectionError: RPCErrorConvertible {
    public var rpcError: RPCError {
        switch self {
        case .invalidFile: RPCError(code: ErrorCode.datasetUnreadable, message: description)
        case .invalidInput: RPCError.invalidParams(description)
        }
    }
}

/// selector/train (learn a selection head on frozen dense features, one partial per step) and
/// selector/evaluate (pointing and box IoU of the plain similarity map and of a selector, side by side).
func registerSelectorHandlers(_ table: inout HandlerTable, services: Services) {
    table.register(SelectorTrainRequest.self) { params, context in
        let started = ContinuousClock.now
        let clip = try await services.clipModel(params.clip)
        let configuration = try selectorConfiguration(params)
        let saveURL = try params.saveAs.map { try services.selectorURL(name: $0, field: "params.saveAs") }
        if let saveURL { try checkSavable(saveURL) }
        let training = try SelectionExampleFile.read(params.examples, field: "params.examples")
        let held = try params.validation.map { try SelectionExampleFile.read($0, field: "params.validation") }
        let fraction = try validationFraction(params.validationFraction)
        let progress = await context.beginProgress(title: "Training a selector on \(training.count) example(s) with \(clip.id)")
        return try await trainSelector(on: training, held: held, fraction: fraction, configuration: configuration, saveURL: saveURL,
                                       clip: clip, services: services, context: context, progress: progress, started: started)
    }

    table.register(SelectorDistilRequest.self) { params, context in
        let started = ContinuousClock.now
        let clip = try await services.clipModel(params.clip)
        let lm = try await services.languageModel(params.lm)
        let configuration = try selectorConfiguration(params.training)
        let reasoning = try reasoningConfiguration(VisualReasoningParams(
            image: ImageInput(), question: "", labels: params.labels, regionGrid: params.regionGrid, maxTokensPerStage: params.maxTokensPerStage,
            seed: params.seed))
        let saveURL = try params.training.saveAs.map { try services.selectorURL(name: $0, field: "params.saveAs") }
        if let saveURL { try checkSavable(saveURL) }
        let questions = try QuestionFile.read(params.training.examples, field: "params.examples")
        let fraction = try validationFraction(params.training.validationFraction)
        let progress = await context.beginProgress(title: "Distilling \(questions.count) reasoning run(s) into a selector")
        let runtime = services.clip, decoder = services.pngDecoder
        let recorded = try await withGenerationCaches(3 * lm.model.cacheBytes, registry: services.registry) {
            try await context.compute { compute in
                try questions.enumerated().compactMap { number, line in
                    let map = try reasonedSelection(line, clip: clip, lm: lm, configuration: reasoning, runtime: runtime, decoder: decoder,
                                                    compute: compute)
                    Task { await progress.report(fraction: 0.5 * Double(number + 1) / Double(questions.count), message: "reasoned \(number + 1)") }
                    return map.map { SelectionExampleLine(line: line.line, image: line.image, text: line.text, box: nil, map: $0) }
                }
            }
        }
        guard !recorded.isEmpty else { throw RPCError.invalidParams("params.examples: no reasoning run produced an attribution map") }
        var result = try await trainSelector(on: recorded, held: nil, fraction: fraction, configuration: configuration, saveURL: saveURL,
                                             clip: clip, services: services, context: context, progress: progress, started: started)
        result.seconds = (ContinuousClock.now - started).seconds
        return SelectorDistilResult(questions: questions.count, recorded: recorded.count, training: result)
    }

    table.register(SelectorEvaluateRequest.self) { params, context in
        let started = ContinuousClock.now
        let clip = try await services.clipModel(params.clip)
        let head = try params.selector.map { try services.selector(named: $0, for: clip, field: "params.selector") }
        let mass = params.mass ?? 0.5
        guard mass > 0, mass <= 1 else { throw RPCError.invalidParams("params.mass: expected a number in (0, 1]") }
        let lines = try SelectionExampleFile.read(params.examples, field: "params.examples")
        if let bad = lines.first(where: { $0.box == nil }) {
            throw RPCError.invalidParams("params.examples: line \(bad.line): evaluation needs a box")
        }
        let progress = await context.beginProgress(title: "Evaluating selection on \(lines.count) queries with \(clip.id)")
        let runtime = services.clip, decoder = services.pngDecoder
        return try await context.compute { compute in
            let scenes = try SceneFeatures.prepare(lines, cropGrid: head?.cropGrid ?? 0, clip: clip, runtime: runtime, decoder: decoder,
                                                   compute: compute)
            var plain = FigureTally(), learned = FigureTally(), images = Set<String>()
            func report() -> SelectorEvaluation {
                SelectorEvaluation(clip: clip.id, selector: params.selector, queries: plain.count, images: images.count,
                                   similarity: plain.figures, learned: head == nil ? nil : learned.figures,
                                   seconds: (ContinuousClock.now - started).seconds)
            }
            for (number, line) in lines.enumerated() {
                try compute.checkCancellation()
                let box = line.box!, text = scenes.text(line.text), dense = SelectorCells(scenes.scene(line.image))
                plain.add(scenes.scene(line.image).similarityMap(textEmbedding: text).scores, on: dense, box: box, mass: mass)
                if let head {
                    let cells = scenes.cells(line.image)
                    learned.add(head.head.map(cells: cells.cells, text: text), on: cells, box: box, mass: mass)
                }
                images.insert(line.image)
                if (number + 1) % 200 == 0 {
                    context.sendPartialFromComputeThread(report())
                    Task { await progress.report(fraction: Double(number + 1) / Double(lines.count), message: "\(number + 1) queries") }
                }
            }
            Task { await progress.end(message: "\(lines.count) queries") }
            return report()
        }
    }
}

/// The selector a generate-with-visual-selection request names with `select: "learned"` (CLIP path only).
func learnedSelection(_ p: VisualReasoningParams) throws -> String? {
    guard p.select == "learned" else {
        if p.selector != nil { throw RPCError.invalidParams("params.selector: only used with select \"learned\"") }
        return nil
    }
    guard let name = p.selector else { throw RPCError.invalidParams("params.selector: select \"learned\" needs a selector's name") }
    if p.mmproj != nil { throw RPCError.invalidParams("params.select: \"learned\" needs the CLIP path ('clip'), not 'mmproj'") }
    return name
}

extension SavedSelector {
    /// The region of `image` the head selects for `text`: the smallest box of its cells holding `mass`
    /// of the head's map.
    func region(for text: String, image: RGBImage, features: PrecomputedImageFeatures, mass: Float, clip: LoadedCLIP,
                runtime: CLIPRuntime, compute: ComputeContext) throws -> PixelBox {
        let query = try runtime.embed(prompts: [text], with: clip, compute: compute)[0]
        let cells: SelectorCells
        if cropGrid > 0 {
            cells = try SelectorCells(crops: cropGrid, of: image, clip: clip, runtime: runtime, compute: compute)
        } else {
            var configuration = ReasoningConfiguration()
            configuration.selection = .off
            cells = SelectorCells(try Attributor(clip: clip.model, preprocessing: clip.preprocessing, image: image, features: features,
                                                 configuration: configuration))
        }
        let scores = head.map(cells: cells.cells, text: query)
        let box = cells.rect(of: Attribution.smallestBox(scores, gridHeight: cells.gridHeight, gridWidth: cells.gridWidth, fraction: mass))
        return PixelBox(x: box.x, y: box.y, width: box.width, height: box.height)
    }

    /// The head's map of a text over an image's cells, as an attribution map.
    func map(of textEmbedding: [Float], on scene: Attributor) -> AttributionMap {
        AttributionMap(gridHeight: scene.gridHeight, gridWidth: scene.gridWidth, scores: head.map(cells: scene.cells, text: textEmbedding),
                       normalization: "selector(T=\(exp(-head.logScale)))")
    }
}

/// Trains a head on lines with boxes or maps (validation: `held`, or `fraction` of the images), saves it
/// when asked, streams one SelectorTrainStep per step; cancelled: the best state so far, saved, in error.data.
func trainSelector(on training: [SelectionExampleLine], held: [SelectionExampleLine]?, fraction: Float,
                   configuration: SelectorTrainingConfiguration, saveURL: URL?, clip: LoadedCLIP, services: Services,
                   context: RequestContext, progress: ProgressReporter, started: ContinuousClock.Instant) async throws -> SelectorTrainResult {
    let runtime = services.clip, decoder = services.pngDecoder
    let (train, validation, images) = try await context.compute { compute in
        let scenes = try SceneFeatures.prepare(training + (held ?? []), cropGrid: configuration.cropGrid, clip: clip, runtime: runtime,
                                               decoder: decoder, compute: compute)
        let all = try scenes.examples(for: training, field: "params.examples")
        if let held { return (all, try scenes.examples(for: held, field: "params.validation"), scenes.count) }
        let split = SceneFeatures.holdOut(training, fraction: fraction, seed: configuration.seed)
        guard !split.isEmpty, split.count < training.count else {
            throw RPCError.invalidParams("params.examples: too few images to hold out \(fraction) of them; give params.validation")
        }
        return (all.indices.filter { !split.contains($0) }.map { all[$0] }, split.sorted().map { all[$0] }, scenes.count)
    }
    let start = SelectionHead.identity(width: clip.model.embedDim, logitScale: clip.model.logitScale)
    let outcome = try await context.compute { compute in
        try SelectorTrainer(configuration: configuration).train(from: start, training: train, validation: validation, onStep: { step in
            context.sendPartialFromComputeThread(SelectorTrainStep(
                step: step.step, totalSteps: configuration.steps, loss: step.loss, validationLoss: step.validationLoss,
                validationTopCell: step.validationTopCell, temperature: step.temperature))
            let message = "step \(step.step)/\(configuration.steps): loss \(step.loss)"
            Task { await progress.report(fraction: Double(step.step) / Double(configuration.steps), message: message) }
        }, compute: compute)
    }
    var result = SelectorTrainResult(
        clip: clip.id, trainExamples: train.count, validationExamples: validation.count, images: images, stepsRun: outcome.stepsRun,
        bestStep: outcome.bestStep, initialValidationLoss: outcome.initialValidationLoss, bestValidationLoss: outcome.bestValidationLoss,
        temperature: exp(-outcome.best.logScale), cancelled: outcome.cancelled, savedTo: nil, seconds: 0)
    if let saveURL {
        struct Details: Encodable { let configuration: SelectorTrainingConfiguration; let result: SelectorTrainResult }
        let details = String(decoding: try JSONCoding.encode(Details(configuration: configuration, result: result)), as: UTF8.self)
        let saved = SavedSelector(head: outcome.best, clipIdentity: try ModelIdentity.of(clip), clipName: clip.id,
                                  cropGrid: configuration.cropGrid, details: details)
        do { try saved.save(to: saveURL) } catch {
            await progress.end(message: "trained, but not saved")
            throw RPCError(code: ErrorCode.invalidParams, message: "params.saveAs: could not save the selector (\(error)); the result is in error.data",
                           data: (try? JSONCoding.value(of: result)) ?? .null)
        }
        result.savedTo = saveURL.path
    }
    result.seconds = (ContinuousClock.now - started).seconds
    await progress.end(message: "best validation loss \(outcome.bestValidationLoss) at step \(outcome.bestStep)")
    if outcome.cancelled {
        // The one -32800 reply carries the best state so far (saved too, when a name was given).
        throw ComputeCancelled(partial: result)
    }
    return result
}

func validationFraction(_ value: Float?) throws -> Float {
    let fraction = value ?? 0.1
    guard fraction > 0, fraction < 1 else { throw RPCError.invalidParams("params.validationFraction: expected a number in (0, 1)") }
    return fraction
}

/// The selection a reasoning run made for one question: the mean of its steps' attribution maps (on
/// the model's cells); nil when no step produced a map.
func reasonedSelection(_ line: SelectionExampleLine, clip: LoadedCLIP, lm: LoadedLanguageModel, configuration: ReasoningConfiguration,
                       runtime: CLIPRuntime, decoder: PNGDecoder, compute: ComputeContext) throws -> [Float]? {
    let image: RGBImage
    do { image = try decoder.decode(contentsOf: line.image) } catch {
        throw RPCError(code: ErrorCode.imageUnreadable, message: "line \(line.line): \(line.image): \(error)")
    }
    let bank = try runtime.classTemplateEmbeddings(labels: configuration.labelBank, templates: configuration.labelTemplates,
                                                   clip: clip, compute: compute)
    let frontEnd = try CLIPFrontEnd(
        clip: clip.model, tokenizer: runtime.tokenizer(), preprocessing: clip.preprocessing,
        classifier: ZeroShotClassifier(classNames: configuration.labelBank, templateEmbeddings: bank), configuration: configuration)
    let features = try runtime.reasoningFeatures(of: image, imageId: CLIPRuntime.imageId(for: image), clip: clip, compute: compute)
    let run = try VisualReasoner(frontEnd: frontEnd, languageModel: lm.model, configuration: configuration)
        .run(image: image, question: line.text, precomputed: features, compute: compute)
    try compute.checkCancellation()
    let maps = run.steps.compactMap { $0.attribution?.map.scores }
    guard let first = maps.first else { return nil }
    return maps.dropFirst().reduce(first) { sum, map in zip(sum, map).map(+) }.map { $0 / Float(maps.count) }
}

/// Pointing hits and box IoUs, summed as the queries come.
struct FigureTally {
    private(set) var count = 0
    private var hits = 0, iou = 0.0

    mutating func add(_ scores: [Float], on cells: SelectorCells, box: PixelRect, mass: Float) {
        hits += SelectionMetrics.pointsInto(scores, cells: cells.rects, box: box) ? 1 : 0
        let chosen = Attribution.smallestBox(scores, gridHeight: cells.gridHeight, gridWidth: cells.gridWidth, fraction: mass)
        iou += cells.rect(of: chosen).iou(box)
        count += 1
    }

    var figures: SelectionFigures {
        SelectionFigures(pointing: count == 0 ? 0 : Double(hits) / Double(count), meanIoU: count == 0 ? 0 : iou / Double(count))
    }
}

/// The cells a selection head scores, with their places in the image: the model's dense cells, or
/// the pooled embeddings of a grid of crops.
struct SelectorCells: Sendable {
    let gridHeight: Int, gridWidth: Int
    /// L2-normalised, row-major.
    let cells: [[Float]]
    let rects: [PixelRect]

    init(_ scene: Attributor) {
        (gridHeight, gridWidth, cells) = (scene.gridHeight, scene.gridWidth, scene.cells)
        rects = (0..<scene.gridHeight * scene.gridWidth).map { cell in
            let box = scene.pixelBox(of: GridBox(row: cell / scene.gridWidth, column: cell % scene.gridWidth, rows: 1, columns: 1))
            return PixelRect(x: box.x, y: box.y, width: box.width, height: box.height)
        }
    }

    /// A `grid`×`grid` tiling of the image (integer bounds), each tile through the image tower's
    /// pooled embedding (through the image cache).
    init(crops grid: Int, of image: RGBImage, clip: LoadedCLIP, runtime: CLIPRuntime, compute: ComputeContext) throws {
        (gridHeight, gridWidth) = (grid, grid)
        rects = (0..<grid * grid).map { cell in
            let (row, column) = (cell / grid, cell % grid)
            let x = column * image.width / grid, y = row * image.height / grid
            return PixelRect(x: x, y: y, width: (column + 1) * image.width / grid - x, height: (row + 1) * image.height / grid - y)
        }
        let crops = try rects.map { try image.cropped(x: $0.x, y: $0.y, width: $0.width, height: $0.height) }
        cells = try runtime.embed(crops.map { (CLIPRuntime.imageId(for: $0), $0) }, with: clip, compute: compute)
            .map { l2Normalized($0.embedding) }
    }

    /// The pixels of a box of cells.
    func rect(of box: GridBox) -> PixelRect {
        let first = rects[box.row * gridWidth + box.column], last = rects[(box.row + box.rows - 1) * gridWidth + box.column + box.columns - 1]
        return PixelRect(x: first.x, y: first.y, width: last.x + last.width - first.x, height: last.y + last.height - first.y)
    }
}

/// The frozen features an examples file needs: each distinct image's cells (through the reasoning
/// feature cache) and each distinct text's embedding (through the text cache).
struct SceneFeatures: Sendable {
    private let scenes: [String: Attributor]
    private let crops: [String: SelectorCells]
    private let texts: [String: [Float]]
    var count: Int { scenes.count }

    func scene(_ path: String) -> Attributor { scenes[path]! }
    func text(_ text: String) -> [Float] { texts[text]! }
    /// The cells the selector scores: the crops' when a crop grid was asked for, else the dense cells.
    func cells(_ path: String) -> SelectorCells { crops[path] ?? SelectorCells(scene(path)) }

    /// Reads every image first and checks every box against its image, then encodes.
    static func prepare(_ lines: [SelectionExampleLine], cropGrid: Int, clip: LoadedCLIP, runtime: CLIPRuntime, decoder: PNGDecoder,
                        compute: ComputeContext) throws -> SceneFeatures {
        var images: [String: RGBImage] = [:]
        for line in lines where images[line.image] == nil {
            do { images[line.image] = try decoder.decode(contentsOf: line.image) } catch {
                throw RPCError(code: ErrorCode.imageUnreadable, message: "line \(line.line): \(line.image): \(error)")
            }
        }
        for line in lines {
            let image = images[line.image]!
            if let box = line.box, box.x + box.width > image.width || box.y + box.height > image.height {
                throw RPCError.invalidParams("line \(line.line): box [\(box.x), \(box.y), \(box.width), \(box.height)] lies outside the "
                                             + "\(image.width)x\(image.height) image \(line.image)")
            }
        }
        var configuration = ReasoningConfiguration()
        configuration.selection = .off
        var scenes: [String: Attributor] = [:], crops: [String: SelectorCells] = [:]
        for (path, image) in images {
            try compute.checkCancellation()
            let features = try runtime.reasoningFeatures(of: image, imageId: CLIPRuntime.imageId(for: image), clip: clip, compute: compute)
            scenes[path] = try Attributor(clip: clip.model, preprocessing: clip.preprocessing, image: image, features: features,
                                          configuration: configuration)
            if cropGrid > 0 {
                crops[path] = try SelectorCells(crops: cropGrid, of: image, clip: clip, runtime: runtime, compute: compute)
            }
        }
        let distinct = Array(Set(lines.map(\.text)))
        let embeddings = try runtime.embed(prompts: distinct, with: clip, compute: compute)
        return SceneFeatures(scenes: scenes, crops: crops, texts: Dictionary(uniqueKeysWithValues: zip(distinct, embeddings)))
    }

    /// Training examples, with each box or map turned into the target distribution over the cells.
    func examples(for lines: [SelectionExampleLine], field: String) throws -> [SelectionExample] {
        try lines.map { line in
            let scene = cells(line.image), cells = scene.gridHeight * scene.gridWidth
            let target: [Float]?
            if let box = line.box {
                target = SelectionTargets.fromBox(box, cells: scene.rects)
                guard target != nil else { throw RPCError.invalidParams("\(field): line \(line.line): the box lies outside the part of the image the model sees") }
            } else {
                target = SelectionTargets.fromMap(line.map!, cellCount: cells)
                guard target != nil else {
                    throw RPCError.invalidParams("\(field): line \(line.line): map must hold \(cells) non-negative values (the \(scene.gridHeight)x\(scene.gridWidth) grid), not all zero")
                }
            }
            return SelectionExample(cells: scene.cells, text: text(line.text), target: target!)
        }
    }

    /// The indices of the lines whose images are held out: a seeded draw of `fraction` of the distinct images.
    static func holdOut(_ lines: [SelectionExampleLine], fraction: Float, seed: UInt64) -> Set<Int> {
        var order = Array(Set(lines.map(\.image))).sorted()
        var generator = SplitMix64(seed: seed)
        order.shuffle(using: &generator)
        let held = Set(order.prefix(Int((Float(order.count) * fraction).rounded(.up))))
        return Set(lines.indices.filter { held.contains(lines[$0].image) })
    }
}

/// The engine's configuration from the wire params, checked here with errors naming the field.
func selectorConfiguration(_ p: SelectorTrainParams) throws -> SelectorTrainingConfiguration {
    var c = SelectorTrainingConfiguration()
    if let v = p.steps { guard v >= 1 else { throw RPCError.invalidParams("params.steps: expected an integer ≥ 1") }; c.steps = v }
    if let v = p.learningRate {
        guard v > 0, v.isFinite else { throw RPCError.invalidParams("params.learningRate: expected a positive number") }
        c.learningRate = v
    }
    if let v = p.batchSize { guard v >= 0 else { throw RPCError.invalidParams("params.batchSize: expected 0 (all) or more") }; c.batchSize = v }
    if let v = p.validateEvery {
        guard v >= 1 else { throw RPCError.invalidParams("params.validateEvery: expected an integer ≥ 1") }
        c.validateEvery = v
    }
    if let v = p.seed { c.seed = v }
    if let v = p.cropGrid {
        guard (0...SelectorTrainingConfiguration.maximumCropGrid).contains(v) else {
            throw RPCError.invalidParams("params.cropGrid: expected an integer in 0...\(SelectorTrainingConfiguration.maximumCropGrid)")
        }
        c.cropGrid = v
    }
    return c
}

extension ModelIdentity {
    private static let known = Mutex<[String: String]>([:])

    /// The SHA-256 of a loaded CLIP model's weights file, computed once per path.
    static func of(_ clip: LoadedCLIP) throws -> String {
        if let identity = known.withLock({ $0[clip.path] }) { return identity }
        let identity = try ofFile(URL(fileURLWithPath: clip.path).appendingPathComponent(CLIPModel.weightsFileName))
        known.withLock { $0[clip.path] = identity }
        return identity
    }
}

extension Services {
    /// Selectors are saved beside learned prompts, as `<name>.selector.safetensors`.
    func selectorURL(name: String, field: String) throws -> URL {
        try learnedPromptURL(name: name + ".selector", field: field)
    }

    /// A saved selector, checked against the CLIP model it is about to be used with.
    func selector(named name: String, for clip: LoadedCLIP, field: String) throws -> SavedSelector {
        let url = try selectorURL(name: name, field: field)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw RPCError.invalidParams("\(field): no selector named '\(name)' (selector/train saves them with saveAs)")
        }
        let saved = try SavedSelector.load(from: url)
        guard saved.clipIdentity == (try ModelIdentity.of(clip)), saved.head.width == clip.model.embedDim else {
            throw RPCError.invalidParams("\(field): selector '\(name)' was trained for another CLIP model ('\(saved.clipName)', weights "
                                         + "sha256 \(saved.clipIdentity.prefix(12))…), not '\(clip.id)'")
        }
        return saved
    }

    /// A saved selector whose maps lie on the model's own cells (what `attribute` reports).
    func denseSelector(named name: String, for clip: LoadedCLIP, field: String) throws -> SavedSelector {
        let saved = try selector(named: name, for: clip, field: field)
        guard saved.cropGrid == 0 else {
            throw RPCError.invalidParams("\(field): selector '\(name)' scores a \(saved.cropGrid)x\(saved.cropGrid) grid of crops, not the "
                                         + "model's cells that attribute maps; evaluate it with selector/evaluate")
        }
        return saved
    }
}
