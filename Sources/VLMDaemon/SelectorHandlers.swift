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
        let configuration = try selectorConfiguration(params, clip: clip)
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
        let configuration = try selectorConfiguration(params.training, clip: clip)
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
        let plainResolution = try params.resolution.map { try denseResolution($0, clip: clip, field: "params.resolution") }
            ?? head.map { $0.cropGrid == 0 ? $0.resolution : 0 } ?? 0
        let mass = params.mass ?? 0.5
        guard mass > 0, mass <= 1 else { throw RPCError.invalidParams("params.mass: expected a number in (0, 1]") }
        let lines = try SelectionExampleFile.read(params.examples, field: "params.examples")
        if let bad = lines.first(where: { $0.box == nil }) {
            throw RPCError.invalidParams("params.examples: line \(bad.line): evaluation needs a box")
        }
        let progress = await context.beginProgress(title: "Evaluating selection on \(lines.count) queries with \(clip.id)")
        let runtime = services.clip, decoder = services.pngDecoder
        return try await context.compute { compute in
            let images = try SceneFeatures.decodeAndCheck(lines, decoder: decoder)
            let plainSource = CellSource.dense(resolution: plainResolution)
            let scenes = try SceneFeatures.prepare(lines, images: images, source: plainSource, clip: clip, runtime: runtime, compute: compute)
            let learnedScenes = try head.map { head in
                head.source == plainSource ? scenes
                    : try SceneFeatures.prepare(lines, images: images, source: head.source, clip: clip, runtime: runtime, compute: compute)
            }
            var plain = FigureTally(), learned = FigureTally(), seen = Set<String>()
            func report() -> SelectorEvaluation {
                SelectorEvaluation(clip: clip.id, selector: params.selector, queries: plain.count, images: seen.count,
                                   similarity: SelectionFigures(plain), learned: head == nil ? nil : SelectionFigures(learned),
                                   resolution: plainSource.side(clip), learnedResolution: head?.source.side(clip),
                                   seconds: (ContinuousClock.now - started).seconds)
            }
            for (number, line) in lines.enumerated() {
                try compute.checkCancellation()
                let box = line.box!, text = scenes.text(line.text), dense = scenes.cells(line.image)
                plain.add(dense.scene!.similarityMap(textEmbedding: text).scores, on: dense.grid, box: box, mass: mass)
                if let head, let learnedScenes {
                    let cells = learnedScenes.cells(line.image)
                    learned.add(head.head.map(cells: cells.cells, text: text), on: cells.grid, box: box, mass: mass)
                }
                seen.insert(line.image)
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

/// The tower side `attribute` sees the image at: the request's, else the selector's (0: the model's
/// size); a selector's maps exist only at the resolution it was trained at.
func attributionResolution(_ requested: Int?, selector: SavedSelector?, clip: LoadedCLIP) throws -> Int {
    let resolution = try requested.map { try denseResolution($0, clip: clip, field: "params.resolution") }
    guard let selector else { return resolution ?? 0 }
    if let resolution, resolution != selector.resolution {
        let trained = selector.resolution == 0 ? clip.model.config.vision.imageSize : selector.resolution
        throw RPCError.invalidParams("params.resolution: the selector was trained on cells at \(trained) px; leave resolution out or give \(trained)")
    }
    return selector.resolution
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
        // The reasoning run's own features serve a head trained on the model's grid; others are computed (and cached).
        let cells = source == .dense(resolution: 0)
            ? SelectorCells(try Attributor(clip: clip.model, preprocessing: clip.preprocessing, image: image, features: features,
                                           configuration: .selectionOff))
            : try SelectorCells(source, of: image, clip: clip, runtime: runtime, compute: compute)
        let scores = head.map(cells: cells.cells, text: query)
        let box = cells.grid.selection(scores, mass: mass)
        return PixelBox(x: box.x, y: box.y, width: box.width, height: box.height)
    }

    /// What the head scores: a grid of crops, or the dense cells at the resolution it was trained at.
    var source: CellSource { cropGrid > 0 ? .crops(grid: cropGrid) : .dense(resolution: resolution) }

    /// The head's map of a text over an image's cells, as an attribution map.
    func map(of textEmbedding: [Float], on cells: SelectorCells) -> AttributionMap {
        AttributionMap(gridHeight: cells.grid.gridHeight, gridWidth: cells.grid.gridWidth, scores: head.map(cells: cells.cells, text: textEmbedding),
                       normalization: "selector(T=\(exp(-head.logScale)))")
    }
}

/// What `attribute` maps texts over: the dense cells (the plain map, or a dense selector's), or a crop
/// selector's grid of crops, which tiles the whole image.
struct AttributionTarget: Sendable {
    let cells: SelectorCells
    let image: RGBImage
    let selector: SavedSelector?
    let configuration: ReasoningConfiguration

    init(_ image: RGBImage, selector: SavedSelector?, resolution: Int, clip: LoadedCLIP, runtime: CLIPRuntime,
         configuration: ReasoningConfiguration, compute: ComputeContext) throws {
        (self.image, self.selector, self.configuration) = (image, selector, configuration)
        if let selector, selector.cropGrid > 0 {
            cells = try SelectorCells(crops: selector.cropGrid, of: image, clip: clip, runtime: runtime, compute: compute)
        } else {
            cells = SelectorCells(try runtime.attributor(of: image, resolution: resolution, clip: clip, configuration: configuration,
                                                         compute: compute))
        }
    }

    func pixelBox(of box: GridBox) -> PixelBox {
        if let scene = cells.scene { return scene.pixelBox(of: box) }
        let rect = cells.grid.rect(of: box)
        return PixelBox(x: rect.x, y: rect.y, width: rect.width, height: rect.height)
    }

    var visibleBox: PixelBox { pixelBox(of: GridBox(row: 0, column: 0, rows: cells.grid.gridHeight, columns: cells.grid.gridWidth)) }

    /// Text number `index`: the selector's map when there is one, else the plain similarity map.
    func attribution(index: Int, text: String, textEmbedding: [Float]) throws -> StepAttribution {
        guard let selector else { return try cells.scene!.attribution(index: index, text: text, textEmbedding: textEmbedding) }
        let map = selector.map(of: textEmbedding, on: cells)
        if let scene = cells.scene { return try scene.attribution(index: index, text: text, map: map) }
        return try Attribution.stepAttribution(step: index, text: text, caption: "text \(index): \(text)", map: map, image: image,
                                               pixelBox: pixelBox(of:), selection: configuration.selection,
                                               heatmaps: configuration.heatmaps, alpha: configuration.heatmapAlpha)
    }
}

/// Trains a head on lines with boxes or maps (validation: `held`, or `fraction` of the images), saves it
/// when asked, streams one SelectorTrainStep per step; cancelled: the best state so far, saved, in error.data.
func trainSelector(on training: [SelectionExampleLine], held: [SelectionExampleLine]?, fraction: Float,
                   configuration: SelectorTrainingConfiguration, saveURL: URL?, clip: LoadedCLIP, services: Services,
                   context: RequestContext, progress: ProgressReporter, started: ContinuousClock.Instant) async throws -> SelectorTrainResult {
    let runtime = services.clip, decoder = services.pngDecoder
    let (train, validation, images) = try await context.compute { compute in
        let lines = training + (held ?? [])
        let source: CellSource = configuration.cropGrid > 0 ? .crops(grid: configuration.cropGrid) : .dense(resolution: configuration.resolution)
        let scenes = try SceneFeatures.prepare(lines, images: try SceneFeatures.decodeAndCheck(lines, decoder: decoder), source: source,
                                               clip: clip, runtime: runtime, compute: compute)
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
                                  cropGrid: configuration.cropGrid, resolution: configuration.resolution, details: details)
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

/// Where a selection head's cells come from.
enum CellSource: Sendable, Equatable {
    /// The tower's dense cells with each image seen at `resolution`×`resolution` px (0: the model's size).
    case dense(resolution: Int)
    /// The pooled embeddings of a `grid`×`grid` tiling of the image.
    case crops(grid: Int)

    /// The side the tower sees the image at for these cells (0 for crops: each crop at the model's size).
    func side(_ clip: LoadedCLIP) -> Int {
        switch self {
        case let .dense(resolution): resolution == 0 ? clip.model.config.vision.imageSize : resolution
        case .crops: 0
        }
    }
}

extension SelectionFigures {
    init(_ tally: FigureTally) { self.init(pointing: tally.pointing, meanIoU: tally.meanIoU) }
}

extension ReasoningConfiguration {
    /// Maps only: no selection, no heatmaps.
    static var selectionOff: ReasoningConfiguration {
        var configuration = ReasoningConfiguration()
        configuration.selection = .off
        return configuration
    }
}

/// The cells a selection head scores, with their places in the image: the model's dense cells (the
/// attributor that made them kept for the plain map), or the pooled embeddings of a grid of crops.
struct SelectorCells: Sendable {
    let grid: CellGrid
    /// L2-normalised, row-major.
    let cells: [[Float]]
    /// The dense cells' attributor (nil for crops).
    let scene: Attributor?

    init(_ scene: Attributor) {
        (cells, self.scene) = (scene.cells, scene)
        grid = CellGrid(gridHeight: scene.gridHeight, gridWidth: scene.gridWidth, rects: (0..<scene.gridHeight * scene.gridWidth).map { cell in
            let box = scene.pixelBox(of: GridBox(row: cell / scene.gridWidth, column: cell % scene.gridWidth, rows: 1, columns: 1))
            return PixelRect(x: box.x, y: box.y, width: box.width, height: box.height)
        })
    }

    /// The cells of `source` for one image, through the runtime's caches.
    init(_ source: CellSource, of image: RGBImage, clip: LoadedCLIP, runtime: CLIPRuntime, compute: ComputeContext) throws {
        switch source {
        case let .dense(resolution):
            self.init(try runtime.attributor(of: image, resolution: resolution, clip: clip, configuration: .selectionOff, compute: compute))
        case let .crops(grid):
            try self.init(crops: grid, of: image, clip: clip, runtime: runtime, compute: compute)
        }
    }

    /// A `grid`×`grid` tiling of the image (integer bounds), each tile through the image tower's
    /// pooled embedding (through the image cache).
    init(crops grid: Int, of image: RGBImage, clip: LoadedCLIP, runtime: CLIPRuntime, compute: ComputeContext) throws {
        scene = nil
        self.grid = CellGrid(gridHeight: grid, gridWidth: grid, rects: (0..<grid * grid).map { cell in
            let (row, column) = (cell / grid, cell % grid)
            let x = column * image.width / grid, y = row * image.height / grid
            return PixelRect(x: x, y: y, width: (column + 1) * image.width / grid - x, height: (row + 1) * image.height / grid - y)
        })
        let crops = try self.grid.rects.map { try image.cropped(x: $0.x, y: $0.y, width: $0.width, height: $0.height) }
        cells = try runtime.embed(crops.map { (CLIPRuntime.imageId(for: $0), $0) }, with: clip, compute: compute)
            .map { l2Normalized($0.embedding) }
    }
}

/// The frozen features an examples file needs: each distinct image's cells and each distinct text's
/// embedding (through the runtime's caches).
struct SceneFeatures: Sendable {
    private let scenes: [String: SelectorCells]
    private let texts: [String: [Float]]
    var count: Int { scenes.count }

    func text(_ text: String) -> [Float] { texts[text]! }
    func cells(_ path: String) -> SelectorCells { scenes[path]! }

    /// Every distinct image of the lines, each box checked against its image, before anything is encoded.
    static func decodeAndCheck(_ lines: [SelectionExampleLine], decoder: PNGDecoder) throws -> [String: RGBImage] {
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
        return images
    }

    static func prepare(_ lines: [SelectionExampleLine], images: [String: RGBImage], source: CellSource, clip: LoadedCLIP,
                        runtime: CLIPRuntime, compute: ComputeContext) throws -> SceneFeatures {
        var scenes: [String: SelectorCells] = [:]
        for (path, image) in images {
            try compute.checkCancellation()
            scenes[path] = try SelectorCells(source, of: image, clip: clip, runtime: runtime, compute: compute)
        }
        let distinct = Array(Set(lines.map(\.text)))
        let embeddings = try runtime.embed(prompts: distinct, with: clip, compute: compute)
        return SceneFeatures(scenes: scenes, texts: Dictionary(uniqueKeysWithValues: zip(distinct, embeddings)))
    }

    /// Training examples, with each box or map turned into the target distribution over the cells.
    func examples(for lines: [SelectionExampleLine], field: String) throws -> [SelectionExample] {
        try lines.map { line in
            let scene = cells(line.image).grid, cells = scene.gridHeight * scene.gridWidth
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
            return SelectionExample(cells: self.cells(line.image).cells, text: text(line.text), target: target!)
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
func selectorConfiguration(_ p: SelectorTrainParams, clip: LoadedCLIP) throws -> SelectorTrainingConfiguration {
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
    if let v = p.resolution {
        c.resolution = try denseResolution(v, clip: clip, field: "params.resolution")
        guard c.cropGrid == 0 || c.resolution == 0 else {
            throw RPCError.invalidParams("params.resolution: sets the grid of the dense cells; with cropGrid each crop is seen at the model's size")
        }
    }
    return c
}

/// A requested tower input side, checked against the model; 0 when it is the model's own size.
func denseResolution(_ value: Int, clip: LoadedCLIP, field: String) throws -> Int {
    guard value != clip.model.config.vision.imageSize else { return 0 }
    do { try clip.model.checkDenseResolution(value) } catch let CLIPError.invalidInput(reason) {
        throw RPCError.invalidParams("\(field): \(reason)")
    }
    return value
}

extension CLIPRuntime {
    /// An attributor for `image` with the tower at `resolution` px (0: the model's size, the features
    /// visual reasoning caches). Other sizes are cached in the same cache under their own key.
    func attributor(of image: RGBImage, resolution: Int, clip: LoadedCLIP, configuration: ReasoningConfiguration,
                    compute: ComputeContext) throws -> Attributor {
        let imageId = CLIPRuntime.imageId(for: image)
        guard resolution > 0 else {
            let features = try reasoningFeatures(of: image, imageId: imageId, clip: clip, compute: compute)
            return try Attributor(clip: clip.model, preprocessing: clip.preprocessing, image: image, features: features,
                                  configuration: configuration)
        }
        let p = clip.preprocessing
        let preprocessing = try CLIPPreprocessing(imageSize: resolution, mean: p.mean, std: p.std, interpolation: p.interpolation,
                                                  resizeMode: p.resizeMode, fill: p.fill)
        let key = ImageKey(model: clip.id, imageId: "\(imageId)@\(resolution)px")
        let features: PrecomputedImageFeatures
        if let cached = reasoningCache.value(for: key) {
            features = cached
        } else {
            let dense = try clip.model.encodeImageDense(preprocessing(image), count: 1, size: resolution, compute: compute)
            features = PrecomputedImageFeatures(dense: (dense.gridHeight, dense.gridWidth, dense.features[0]))
            reasoningCache.insert(features, for: key, cost: 4 * dense.features[0].count * clip.model.embedDim + 256)
        }
        return try Attributor(clip: clip.model, preprocessing: preprocessing, image: image, features: features, configuration: configuration)
    }
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
}
