import Foundation
import Testing
import VLMImage
import VLMLanguage
@testable import VLMReasoning
import VLMTensor

/// One projector fixture path: the projector and a language model of its width.
struct ProjectorPath: CustomStringConvertible, Sendable {
    let name: String
    let projector: any MultimodalProjector
    let model: LanguageModel
    var description: String { name }

    static let llava = ProjectorPath(name: "mlp", projector: LLaVAModels.tower, model: Models.stories)
    /// idefics3's tiny llama with room for four stages and looks (random weights write long stages).
    static let tinyLM = try! LanguageModel(path: Idefics3Reference.directory.appendingPathComponent("tiny-lm.gguf"), contextLength: 2048)
    static let idefics3 = ProjectorPath(name: "idefics3", projector: Idefics3Models.projector, model: tinyLM)
    /// The gemma3 fixture's reference LM is idefics3's tiny llama (fixtures/gemma3/reference.json).
    static let gemma3 = ProjectorPath(name: "gemma3", projector: try! Gemma3Projector(url: Gemma3ProjectorTests.directory.appendingPathComponent("tiny-mmproj.gguf")),
                                      model: tinyLM)
    static let all = [llava, idefics3, gemma3]
}

@Suite struct ProjectorFrontEndTests {
    static let frontEnd = try! ProjectorFrontEnd(projector: LLaVAModels.tower, languageModel: Models.stories)

    @Test func defaultAttentionLayersAreTheLastThird() throws {
        #expect(Self.frontEnd.attentionLayers == [3, 4])  // stories260K has 5 layers
        #expect(throws: ReasoningError.self) { _ = try ProjectorFrontEnd(projector: LLaVAModels.tower, languageModel: Models.stories, attentionLayers: [5]) }
    }

    /// The visual prefix holds BOS + the image tokens, and the reasoning cache continues from it exactly
    /// as one mixed prefill of [BOS][image][prompt text] would.
    @Test func prefixCacheContinuesTheVisualPrefix() throws {
        let model = Models.stories
        let prepared = try Self.frontEnd.prepare(LLaVAModels.image("chelsea.png"), precomputed: nil, compute: ComputeContext())
        let visual = try #require(prepared.visualPrefix)
        #expect(visual.cache.count == 1 + 16 && visual.leadingTokens == [1] && visual.version == 0)
        #expect(prepared.attentionReadout?.positions == [1..<17])
        let prompt = model.tokenize("Once upon a time there was")
        var cache = PrefixCache(model: model)
        let logits = try cache.extend(to: prompt, model: model, visual: visual, compute: ComputeContext())
        #expect(cache.cache.count == 16 + prompt.count)

        let image = try LLaVAModels.tower.encode(LLaVAModels.image("chelsea.png"))
        var direct = model.transformer.makeCache(capacity: model.contextLength)
        let expected = try model.prefill(segments: [.tokens([1]), .embeddings(image, count: 16), .tokens(Array(prompt.dropFirst()))],
                                         cache: &direct)
        #expect(logits == expected)
        // Extending by more text reuses the cache; a look restarts it from the longer prefix.
        _ = try cache.extend(to: prompt + model.tokenizer.encode(" a cat", addSpecial: false), model: model, visual: visual, compute: ComputeContext())
        _ = try prepared.lookEvidence(at: PixelBox(x: 10, y: 20, width: 100, height: 80), step: 0, compute: ComputeContext())
        let longer = try #require(prepared.visualPrefix)
        #expect(longer.version == 1 && longer.cache.count == 1 + 32)
        #expect(prepared.attentionReadout?.positions == [1..<17, 17..<33])
        _ = try cache.extend(to: prompt, model: model, visual: longer, compute: ComputeContext())
        #expect(cache.cache.count == 32 + prompt.count)
    }

    /// Idefics3's chunks go into the prefix with their marker text: the image positions are the
    /// embedding chunks' places, between the markers' tokens.
    @Test func tiledChunksKeepTheirMarkers() throws {
        let path = ProjectorPath.idefics3
        let frontEnd = try ProjectorFrontEnd(projector: path.projector, languageModel: path.model)
        let image = try LLaVAModels.image("chelsea.png")
        let prepared = try frontEnd.prepare(image, precomputed: nil, compute: ComputeContext())
        let tokens = try path.projector.imageTokens(for: image, compute: ComputeContext())
        let leading = path.model.tokenizer.encode("", addSpecial: true, parseSpecial: false)
        var position = leading.count, expected: [Range<Int>] = []
        for segment in tokens.segments(tokenizer: path.model.tokenizer) {
            if case .embeddings = segment { expected.append(position..<(position + segment.positionCount)) }
            position += segment.positionCount
        }
        #expect(expected.count > 1 && prepared.attentionReadout?.positions == expected)
        #expect(prepared.visualPrefix?.cache.count == position)
    }

    /// A step's map is its own generated tokens' attention in the full context: the mean weight the
    /// step's tokens give each image position, recorded token by token while generating, equals one
    /// batched pass of the same tokens after the same context (Transformer.meanAttention).
    @Test(arguments: ProjectorPath.all)
    func stepAttentionIsTheStepsOwnTokensInContext(_ path: ProjectorPath) throws {
        var configuration = smallConfiguration()
        configuration.temperature = 0
        let frontEnd = try ProjectorFrontEnd(projector: path.projector, languageModel: path.model)
        let reasoner = try VisualReasoner(frontEnd: frontEnd, languageModel: path.model, configuration: configuration)
        let prepared = try frontEnd.prepare(try LLaVAModels.image("coins.png"), precomputed: nil, compute: ComputeContext())
        let builder = PromptBuilder(model: path.model, stages: configuration.stages, question: "What is it?")
        let run = ReasoningRun(reasoner: reasoner, prepared: prepared, builder: builder, question: "What is it?",
                               evidence: try prepared.initialEvidence(compute: ComputeContext()), start: Date(),
                               compute: ComputeContext(), onEvent: { _ in })
        run.transcript = "<SUMMARY>coins</SUMMARY>\n<REASONING>\n"
        let stage = configuration.stages[2]
        let contextEnd = PrefixCache.endSlot(of: run.contextPieces(), after: prepared.visualPrefix)
        let result = try run.generateUnit(stage, step: 0, maxTokens: 12, extraStops: StepBoundary.stops)
        let recorded = try #require(run.stepAttention)
        try #require(!result.tokenIDs.isEmpty)
        #expect(recorded.tokens == result.tokenIDs.count)

        let readout = try #require(prepared.attentionReadout)
        let first = readout.positions.first!.lowerBound, last = readout.positions.last!.upperBound
        // The one candidate sampled on the shared cache: the context is what it held before the step.
        var context = run.cache.cache
        context.truncate(to: contextEnd)
        let batched = try path.model.transformer.meanAttention(of: result.tokenIDs, after: context, layers: readout.layers,
                                                               to: first..<last)
        let expected = readout.positions.flatMap { range in range.map { Double(batched[$0 - first]) } }
        #expect(expected.count == recorded.mean.count)
        for (ours, theirs) in zip(recorded.mean, expected) { #expect(abs(ours - theirs) <= 1e-4 + 1e-3 * theirs) }
        #expect(expected.reduce(0, +) > 0)
    }

    /// End to end on every projector path: every stage, one normalised map per step on the image's
    /// token grid, selections and looks inside the image, looks adding the crop's chunks.
    @Test(arguments: ProjectorPath.all, ["chelsea.png", "astronaut.png"])
    func allStagesMapsAndLooks(_ path: ProjectorPath, _ imageName: String) throws {
        let image = try LLaVAModels.image(imageName)
        let configuration = lookingConfiguration(looks: 2, steps: 3, tokensPerStage: 40)
        let log = EventLog()
        let result = try path.reason(about: image, configuration: configuration, log: log)
        try #require(result.outcome == .completed, "\(result.outcome)\n\(result.transcript)")
        #expect(result.stages.map(\.tag) == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"])
        #expect(result.stages.allSatisfy { $0.complete })
        let geometry = path.projector.tokenGeometry(width: image.width, height: image.height)
        #expect(result.transcript.contains("[whole image: \(geometry.tokenRegions.count) image tokens"))

        #expect(!result.steps.isEmpty && log.attributions.map(\.step) == result.steps.map(\.index))
        for attribution in log.attributions {
            let map = attribution.map
            #expect(map.gridHeight == geometry.gridHeight && map.gridWidth == geometry.gridWidth)
            #expect(map.scores.allSatisfy { $0.isFinite && $0 >= 0 } && abs(map.scores.reduce(0, +) - 1) < 1e-5)
            let selection = try #require(attribution.selection)
            #expect(inside(selection.pixelBox, image) && selection.mass >= 0.4 - 1e-5)
            let heatmap = try PNGDecoder().decode(try #require(attribution.heatmapPNG))
            #expect(isHeatmapLayout(heatmap, of: image))
        }
        // Heatmaps draw on the worker, timed apart; a step's attribution event still precedes its look's.
        #expect(result.timings.heatmapSeconds > 0 && result.steps.allSatisfy { $0.attribution?.heatmapPNG != nil })
        let order = log.events.compactMap { event -> String? in
            switch event {
            case let .attribution(a): "map \(a.step)"
            case let .look(l): "look \(l.step)"
            default: nil
            }
        }
        for look in log.looks { #expect((order.firstIndex(of: "map \(look.step)") ?? .max) < order.firstIndex(of: "look \(look.step)")!) }
        #expect(log.looks.count <= 2)
        for look in log.looks {
            guard case let .look(_, box) = look.evidence.source else { Issue.record("not a look"); continue }
            #expect(inside(box, image))
            #expect(result.transcript.contains("[\(look.evidence.text)]"))
        }
        print("\(path) run \(imageName): \(result.steps.count) steps, \(log.looks.count) looks, "
              + "\(result.timings.generatedTokens) tokens, first map \(log.attributions.first?.map.scores.map { String(format: "%.3f", $0) } ?? [])")
    }
}
