// Looks during a run join the context where the step that asked for them ended: the crop's chunks run
// once on the end of the running cache, nothing before them runs again, and later steps read them.
import Foundation
import Testing
import VLMImage
import VLMLanguage
@testable import VLMReasoning
import VLMTensor

extension ProjectorPath {
    /// The gemma3 projector with a gemma3-architecture language model (random weights, sliding window on
    /// block 0), room for four stages and looks.
    static let gemma3LM = ProjectorPath(
        name: "gemma3+gemma3-lm", projector: gemma3.projector,
        model: try! LanguageModel(path: Gemma3ProjectorTests.directory.appendingPathComponent("tiny-lm.gguf"), contextLength: 2048))

    /// A whole run on this path, its events streamed to `log`.
    func reason(about image: RGBImage, configuration: ReasoningConfiguration, log: EventLog) throws -> ReasoningResult {
        let reasoner = try VisualReasoner(frontEnd: ProjectorFrontEnd(projector: projector, languageModel: model),
                                          languageModel: model, configuration: configuration)
        return try reasoner.run(image: image, question: "What is in the picture?", onEvent: log.record)
    }
}

@Suite struct LookInContextTests {
    /// A run on `path` after one step's text: `transcript` holds the question's stages so far.
    struct SteppedRun {
        let path: ProjectorPath
        let image: RGBImage
        let prepared: any PreparedImage
        let builder: PromptBuilder
        let run: ReasoningRun
        let configuration: ReasoningConfiguration

        init(_ path: ProjectorPath, image name: String = "coins.png") throws {
            var configuration = smallConfiguration()
            configuration.temperature = 0
            let frontEnd = try ProjectorFrontEnd(projector: path.projector, languageModel: path.model)
            let reasoner = try VisualReasoner(frontEnd: frontEnd, languageModel: path.model, configuration: configuration)
            image = try LLaVAModels.image(name)
            prepared = try frontEnd.prepare(image, precomputed: nil, compute: ComputeContext())
            builder = PromptBuilder(model: path.model, stages: configuration.stages, question: "What is it?")
            run = ReasoningRun(reasoner: reasoner, prepared: prepared, builder: builder, question: "What is it?",
                               evidence: try prepared.initialEvidence(compute: ComputeContext()), start: Date(),
                               compute: ComputeContext(), onEvent: { _ in })
            run.transcript = "<SUMMARY>coins</SUMMARY>\n<REASONING>\n"
            (self.path, self.configuration) = (path, configuration)
        }

        func step() throws -> GenerationResult {
            try run.generateUnit(configuration.stages[2], step: 0, maxTokens: 6, extraStops: StepBoundary.stops)
        }

        /// The chunks `picture` is laid out as in the context.
        func chunks(_ picture: RGBImage) throws -> [PromptSegment] {
            try path.projector.imageTokens(for: picture, compute: ComputeContext()).segments(tokenizer: path.model.tokenizer)
        }
    }

    static let box = PixelBox(x: 40, y: 30, width: 120, height: 90)

    /// After a look the running cache holds what one mixed prefill of the same transcript holds, with the
    /// crop's chunks (markers, embeddings, layout) where the step ended: the same positions, the same
    /// logits; only the step's text, the crop's chunks and the evidence line ran; the crop's image tokens
    /// join the attention readout at their places, and the next step runs nothing again.
    @Test(arguments: [ProjectorPath.llava, .idefics3, .gemma3LM])
    func lookJoinsTheContextWhereTheStepEnded(_ path: ProjectorPath) throws {
        let stepped = try SteppedRun(path)
        let (run, model) = (stepped.run, path.model)
        _ = try stepped.step()
        let contextBefore = PrefixCache.endSlot(of: run.contextPieces(), after: stepped.prepared.visualPrefix)
        let stepText = "the coins are round.\n"
        run.transcript += stepText
        let ranBefore = run.cache.prefilledPositions
        let readoutBefore = try #require(stepped.prepared.attentionReadout).positions

        let evidence = try run.look(at: Self.box, step: 0)
        #expect(evidence.source == .look(step: 0, box: Self.box))
        #expect(run.transcript.hasSuffix(stepText + "[\(evidence.text)]\n"))

        // The reference: [BOS][image][prompt + transcript][crop][evidence line], in one prefill.
        let leading = model.tokenizer.encode("", addSpecial: true, parseSpecial: false)
        let text = stepped.builder.tokens("<SUMMARY>coins</SUMMARY>\n<REASONING>\n" + stepText)
        let crop = try stepped.chunks(stepped.image.cropped(x: Self.box.x, y: Self.box.y, width: Self.box.width, height: Self.box.height))
        let whole = try stepped.chunks(stepped.image)
        let before: [PromptSegment] = [.tokens(leading)] + whole + [.tokens(Array(text.dropFirst(leading.count)))]
        let reference = before + crop + [.tokens(stepped.builder.continuation("[\(evidence.text)]\n"))]
        var direct = model.transformer.makeCache(capacity: model.contextLength)
        let expected = try model.prefill(segments: reference, cache: &direct)
        #expect(run.cache.cache.count == direct.count && run.cache.cache.nextPosition == direct.nextPosition)
        expectClose(run.cache.logits, expected)

        // Nothing of the context before the step ran again: at most the step's text, then the crop's
        // chunks and the evidence line.
        let ran = run.cache.prefilledPositions - ranBefore
        let lookAndLine = crop.reduce(0) { $0 + $1.positionCount } + stepped.builder.continuation("[\(evidence.text)]\n").count
        #expect(lookAndLine <= ran && ran <= direct.count - contextBefore && ran < contextBefore)

        var slot = before.reduce(0) { $0 + $1.positionCount }, lookRanges: [Range<Int>] = []
        for segment in crop {
            if case .embeddings = segment { lookRanges.append(slot..<(slot + segment.positionCount)) }
            slot += segment.positionCount
        }
        #expect(!lookRanges.isEmpty && stepped.prepared.attentionReadout?.positions == readoutBefore + lookRanges)

        let ranAfterLook = run.cache.prefilledPositions
        let next = try stepped.step()
        #expect(run.cache.prefilledPositions == ranAfterLook)
        #expect(run.stepAttention?.tokens == next.tokenIDs.count)
    }

    /// gemma3's image tokens see each other both ways inside the language model (mtmd decodes them with
    /// causal attention off); a look's tokens too: the running cache matches the bidirectional reference,
    /// not a causal one.
    @Test func gemma3LookTokensAttendBothWays() throws {
        let stepped = try SteppedRun(.gemma3LM)
        let (run, model) = (stepped.run, stepped.path.model)
        _ = try stepped.step()
        run.transcript += "the coins are round.\n"
        let evidence = try run.look(at: Self.box, step: 0)

        let crop = try stepped.chunks(stepped.image.cropped(x: Self.box.x, y: Self.box.y, width: Self.box.width, height: Self.box.height))
        var causalCrop: [PromptSegment] = []
        for segment in crop {
            guard case let .embeddings(values, count, layout) = segment else { causalCrop.append(segment); continue }
            #expect(layout.attention == .bidirectional)
            causalCrop.append(.embeddings(values, count: count, layout: EmbeddingLayout(attention: .causal, grid: layout.grid)))
        }
        let leading = model.tokenizer.encode("", addSpecial: true, parseSpecial: false)
        let text = stepped.builder.tokens("<SUMMARY>coins</SUMMARY>\n<REASONING>\nthe coins are round.\n")
        let whole = try stepped.chunks(stepped.image)
        let before: [PromptSegment] = [.tokens(leading)] + whole + [.tokens(Array(text.dropFirst(leading.count)))]
        let after: [PromptSegment] = [.tokens(stepped.builder.continuation("[\(evidence.text)]\n"))]
        var causal = model.transformer.makeCache(capacity: model.contextLength)
        let causalLogits = try model.prefill(segments: before + causalCrop + after, cache: &causal)
        let difference = zip(run.cache.logits, causalLogits).map { abs($0 - $1) }.max() ?? 0
        #expect(difference > 1e-3, "a causal look would give the same logits: the test could not tell")
    }

    /// A streamed run on the gemma3 projector with a gemma3 language model: the four stages, one map per
    /// step on the image's grid, and a look whose event reports the pixel box of the step's selection.
    @Test func gemma3StreamedRunWithALook() throws {
        let path = ProjectorPath.gemma3LM
        let image = try LLaVAModels.image("astronaut.png")
        let configuration = lookingConfiguration(looks: 1, steps: 3, tokensPerStage: 40)
        let log = EventLog()
        let result = try path.reason(about: image, configuration: configuration, log: log)
        try #require(result.outcome == .completed, "\(result.outcome)\n\(result.transcript)")
        #expect(log.stageBoundaries == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"].flatMap { ["begin \($0)", "end \($0)"] })
        #expect(!result.steps.isEmpty && log.attributions.map(\.step) == result.steps.map(\.index))
        let geometry = path.projector.tokenGeometry(width: image.width, height: image.height)
        for map in log.attributions.map(\.map) {
            #expect(map.gridHeight == geometry.gridHeight && map.gridWidth == geometry.gridWidth)
            #expect(map.scores.allSatisfy { $0.isFinite && $0 >= 0 } && abs(map.scores.reduce(0, +) - 1) < 1e-5)
        }
        let look = try #require(log.looks.first, "no look in \(result.transcript)")
        guard case let .look(step, box) = look.evidence.source else { Issue.record("not a look"); return }
        #expect(step == look.step && inside(box, image))
        let selection = try #require(log.attributions.first { $0.step == look.step }?.selection)
        #expect(box == selection.pixelBox)
        #expect(result.transcript.contains("[\(look.evidence.text)]"))
    }
}

/// Logits of the same context computed in other batches: the same to float rounding, the same argmax.
func expectClose(_ ours: [Float], _ theirs: [Float], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(ours.count == theirs.count && !ours.isEmpty, sourceLocation: sourceLocation)
    let scale = theirs.map(abs).max() ?? 1
    let worst = zip(ours, theirs).map { abs($0 - $1) }.max() ?? .infinity
    #expect(worst <= 1e-3 * max(scale, 1), "max difference \(worst)", sourceLocation: sourceLocation)
    #expect(ours.indices.max { ours[$0] < ours[$1] } == theirs.indices.max { theirs[$0] < theirs[$1] }, sourceLocation: sourceLocation)
}
