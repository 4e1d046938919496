import Foundation
import VLMCLIP
import VLMImage
import VLMReasoning
import VLMTensor
import VLMWire

extension MMProjError: RPCErrorConvertible {
    public var rpcError: RPCError {
        switch self {
        case .widthMismatch: return RPCError.invalidParams("params.mmproj: \(description)")
        default: return RPCError(code: ErrorCode.modelLoadFailed, message: description)
        }
    }
}

extension ReasoningError: RPCErrorConvertible {
    public var rpcError: RPCError {
        switch self {
        case .missingModel: return RPCError(code: ErrorCode.modelNotLoaded, message: description)
        case .invalidConfiguration: return RPCError.invalidParams(description)
        case .invalidImage: return RPCError(code: ErrorCode.imageUnreadable, message: description)
        case .contextTooSmall: return RPCError(code: ErrorCode.contextOverflow, message: description)
        }
    }
}

/// generate-with-visual-selection: staged reasoning by a GGUF language model over CLIP evidence, with
/// stage-level beam search, per-step patch attribution and looks, every event streamed.
func registerVisualReasoningHandlers(_ table: inout HandlerTable, services: Services) {
    table.register(VisualReasoningRequest.self) { params, context in
        let lm = try await services.languageModel(params.lm)
        let configuration = try reasoningConfiguration(params)
        if params.mmproj != nil, params.clip != nil {
            throw RPCError.invalidParams("params: give 'clip' (composed path) or 'mmproj' (projector path), not both")
        }
        if params.attentionLayers != nil, params.mmproj == nil {
            throw RPCError.invalidParams("params.attentionLayers: only the projector path ('mmproj') attributes by attention")
        }
        guard let input = try services.decodeImages([params.image]).first, let image = input.image else {
            throw RPCError.invalidParams("params.image: expected a 'path' or 'png' (the image itself is needed to crop and look again)")
        }
        let learned = try learnedSelection(params)
        let makeReasoner: @Sendable (ComputeContext) throws -> (VisualReasoner, PrecomputedImageFeatures?, PixelBox?)
        let seer: String
        if let projectorID = params.mmproj {
            let projector = try await services.model(projectorID, of: ProjectorFamily.self)
            // Checked here, before anything runs: a projector must emit the language model's width.
            let frontEnd = try ProjectorFrontEnd(projector: projector.projector, languageModel: lm.model, attentionLayers: params.attentionLayers)
            makeReasoner = { _ in (try VisualReasoner(frontEnd: frontEnd, languageModel: lm.model, configuration: configuration), nil, nil) }
            seer = projector.id
        } else {
            let clip = try await services.clipModel(params.clip)
            let selector = try learned.map { try services.selector(named: $0, for: clip, field: "params.selector") }
            let runtime = services.clip
            makeReasoner = { compute in
                // The label bank's text embeddings and the image's features both come through the caches.
                let bank = try runtime.classTemplateEmbeddings(labels: configuration.labelBank, templates: configuration.labelTemplates,
                                                               clip: clip, compute: compute)
                let frontEnd = try CLIPFrontEnd(
                    clip: clip.model, tokenizer: runtime.tokenizer(), preprocessing: clip.preprocessing,
                    classifier: ZeroShotClassifier(classNames: configuration.labelBank, templateEmbeddings: bank), configuration: configuration)
                let features = try runtime.reasoningFeatures(of: image, imageId: input.imageId, clip: clip, compute: compute)
                let selected = try selector.map {
                    try $0.region(for: params.question, image: image, features: features, mass: params.mass ?? 0.5, clip: clip,
                                  runtime: runtime, compute: compute)
                }
                return (try VisualReasoner(frontEnd: frontEnd, languageModel: lm.model, configuration: configuration), features, selected)
            }
            seer = clip.id
        }
        // At most this many full-context caches live at once: the run's shared prefix, the candidate's fork,
        // the judge's prefix and, on the projector path, the prepared image's.
        let liveCaches = params.mmproj == nil ? 3 : 4
        let result = try await withGenerationCaches(liveCaches * lm.model.cacheBytes, registry: services.registry) {
            let progress = await context.beginProgress(title: "Reasoning about the image with \(lm.id) and \(seer)")
            // Events go out in order from one task: the decoding thread hands each over and goes on with the
            // next token instead of waiting for it to be encoded and written. Every event is out before the reply.
            let (events, sink) = AsyncStream.makeStream(of: VisualReasoningEvent.self)
            let writer = Task {
                for await wire in events {
                    await context.sendPartial(wire)
                    if wire.event == "stage" { await progress.report(message: "\(wire.phase ?? "") \(wire.stage ?? "")") }
                }
            }
            let reasoned: Result<ReasoningResult, any Error>
            do {
                reasoned = .success(try await context.compute { compute in
                    let (reasoner, precomputed, selected) = try makeReasoner(compute)
                    return try reasoner.run(image: image, question: params.question, precomputed: precomputed, selected: selected,
                                            compute: compute) { sink.yield(wireEvent($0)) }
                })
            } catch {
                reasoned = .failure(error)
            }
            sink.finish()
            await writer.value
            await progress.end()
            return try reasoned.get()
        }
        let reply = wireResult(result)
        switch result.outcome {
        case .completed:
            return reply
        case .cancelled:
            throw ComputeCancelled(partial: reply)
        case .failed(let reason):
            throw RPCError(code: ErrorCode.internalError, message: "generation stopped: \(reason)", data: try? JSONCoding.value(of: reply))
        }
    }
}

func reasoningConfiguration(_ p: VisualReasoningParams) throws -> ReasoningConfiguration {
    var c = ReasoningConfiguration()
    if let stages = p.stages {
        c.stages = try stages.enumerated().map { index, stage in
            guard let role = StageSpecification.Role(rawValue: stage.role ?? "plain") else {
                throw RPCError.invalidParams("params.stages[\(index)].role: expected \"plain\", \"evidence\", \"steps\" or \"answer\"")
            }
            return StageSpecification(tag: stage.tag, instruction: stage.instruction, role: role)
        }
    }
    if let v = p.beam { c.beamWidth = v }
    switch p.judge {
    case nil: break
    case "pairwise": c.judge = .pairwise
    case "loglik": c.judge = .logLikelihood
    case let other?: throw RPCError.invalidParams("params.judge: expected \"pairwise\" or \"loglik\", got \"\(other)\"")
    }
    if let v = p.sharePrefix { c.sharePrefix = v }
    // With a learned selector the look happens up front; the steps' maps still select as "box" does.
    c.selection = try patchSelection(select: p.select == "learned" ? "box" : p.select, k: p.k, mass: p.mass, default: c.selection)
    if let v = p.maxLooks { c.maxLooks = v }
    if let v = p.maxSteps { c.maxSteps = v }
    if let v = p.labels { c.labelBank = v }
    if let grid = p.regionGrid {
        guard grid.count == 2 else { throw RPCError.invalidParams("params.regionGrid: expected [rows, columns]") }
        c.regionGrid = (grid[0], grid[1])
    }
    if let v = p.maxTokensPerStage { c.maxTokensPerStage = v }
    if let v = p.temperature { c.temperature = v }
    if let v = p.topP { c.topP = v }
    if let v = p.seed { c.seed = v }
    c.heatmaps = try heatmapOutput(dir: p.heatmapDir, inline: p.heatmapsInline, lastStep: c.maxSteps)
    do { try c.validate() } catch let error as ReasoningError { throw error.rpcError }
    return c
}

/// The `select`, `k` and `mass` params (shared by generate-with-visual-selection and attribute).
func patchSelection(select: String?, k: Int?, mass: Float?, default fallback: PatchSelection) throws -> PatchSelection {
    switch select {
    case nil: return mass.map { .box(mass: $0) } ?? fallback
    case "off": return .off
    case "topk": return .topK(k ?? 4)
    case "box": return .box(mass: mass ?? 0.5)
    case let other?: throw RPCError.invalidParams("params.select: expected \"off\", \"topk\" or \"box\", got \"\(other)\"")
    }
}

/// The `heatmapDir` and `heatmapsInline` params (shared by generate-with-visual-selection and attribute).
/// A directory is checked before any work: every heatmap of steps 0...lastStep must be writable there.
func heatmapOutput(dir: String?, inline: Bool?, lastStep: Int) throws -> HeatmapOutput {
    switch (dir, inline) {
    case (let dir?, nil), (let dir?, false?):
        let directory = URL(fileURLWithPath: dir)
        do { try HeatmapRenderer.checkDirectory(directory, maxSteps: lastStep) } catch {
            throw RPCError.invalidParams("params.heatmapDir: \(error)")
        }
        return .directory(directory)
    case (nil, true?): return .inline
    case (_?, true?): throw RPCError.invalidParams("params: give 'heatmapDir' or 'heatmapsInline', not both")
    default: return .off
    }
}

// MARK: - Engine values to wire values
//
// Verdicts, stages, timings and label probabilities are VLMWire's types in the engine already. The
// values below differ from their wire forms on purpose, and each has one conversion (tested in
// WireConversionTests).

/// A PixelBox's `description` is prompt text, so the engine keeps its own box.
func wireBox(_ b: PixelBox) -> BoxParam { BoxParam(x: b.x, y: b.y, width: b.width, height: b.height) }

/// The source enum becomes the flat `source` tag with `region`, `step` and `box` set as it says.
func wireEvidence(_ e: Evidence) -> EvidenceInfo {
    switch e.source {
    case .wholeImage: return EvidenceInfo(source: "image", region: nil, step: nil, box: nil, tags: e.tags, text: e.text)
    case let .region(name, box): return EvidenceInfo(source: "region", region: name, step: nil, box: wireBox(box), tags: e.tags, text: e.text)
    case let .look(step, box): return EvidenceInfo(source: "look", region: nil, step: step, box: wireBox(box), tags: e.tags, text: e.text)
    }
}

/// The grid box becomes `[row, column, rows, columns]`.
func wireSelection(_ s: PatchSelectionResult) -> SelectionInfo {
    SelectionInfo(method: s.method, cells: s.cells, gridBox: [s.gridBox.row, s.gridBox.column, s.gridBox.rows, s.gridBox.columns],
                  pixelBox: wireBox(s.pixelBox), mass: s.mass)
}

/// The map's fields move up a level and heatmap bytes become base64.
func wireAttribution(_ a: StepAttribution) -> AttributionInfo {
    AttributionInfo(step: a.step, text: a.text, gridHeight: a.map.gridHeight, gridWidth: a.map.gridWidth, scores: a.map.scores,
                    normalization: a.map.normalization, selection: a.selection.map(wireSelection), heatmapPath: a.heatmapPath,
                    heatmapPNG: a.heatmapPNG.map { Data($0).base64EncodedString() })
}

func wireEvent(_ event: ReasoningEvent) -> VisualReasoningEvent {
    switch event {
    case .evidence(let e):
        var w = VisualReasoningEvent(event: "evidence"); w.evidence = wireEvidence(e); return w
    case let .stageBegan(index, tag):
        var w = VisualReasoningEvent(event: "stage"); w.phase = "begin"; w.stageIndex = index; w.stage = tag; return w
    case let .stageEnded(index, tag, text):
        var w = VisualReasoningEvent(event: "stage"); w.phase = "end"; w.stageIndex = index; w.stage = tag; w.text = text; return w
    case let .token(stage, step, candidate, text):
        var w = VisualReasoningEvent(event: "token"); w.stage = stage; w.step = step; w.candidate = candidate; w.text = text; return w
    case .verdict(let v):
        var w = VisualReasoningEvent(event: "verdict"); w.verdict = v; return w
    case .attribution(let a):
        var w = VisualReasoningEvent(event: "attribution"); w.attribution = wireAttribution(a); w.step = a.step; return w
    case .look(let l):
        var w = VisualReasoningEvent(event: "look"); w.step = l.step; w.evidence = wireEvidence(l.evidence); w.seconds = l.seconds; return w
    }
}

func wireStep(_ s: ReasoningStep) -> StepInfo {
    StepInfo(index: s.index, stage: s.stage, text: s.text, attribution: s.attribution.map(wireAttribution), look: s.look.map(wireEvidence))
}

/// The outcome enum becomes `outcome` + `failure`; steps carry wire attributions and looks.
func wireResult(_ r: ReasoningResult) -> VisualReasoningResult {
    let (outcome, failure): (String, String?) = switch r.outcome {
    case .completed: ("completed", nil)
    case .cancelled: ("cancelled", nil)
    case .failed(let reason): ("failed", reason)
    }
    return VisualReasoningResult(
        outcome: outcome, failure: failure, answer: r.answer, stages: r.stages,
        steps: r.steps.map(wireStep), evidence: r.evidence.map(wireEvidence), verdicts: r.verdicts, transcript: r.transcript, timings: r.timings)
}
