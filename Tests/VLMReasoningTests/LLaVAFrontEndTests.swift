import Foundation
import Testing
import VLMImage
import VLMLanguage
@testable import VLMReasoning
import VLMTensor

@Suite struct LLaVAFrontEndTests {
    static let frontEnd = try! LLaVAFrontEnd(tower: LLaVAModels.tower, languageModel: Models.stories)

    @Test func defaultAttentionLayersAreTheLastThird() throws {
        #expect(Self.frontEnd.attentionLayers == [3, 4])  // stories260K has 5 layers
        #expect(throws: ReasoningError.self) { _ = try LLaVAFrontEnd(tower: LLaVAModels.tower, languageModel: Models.stories, attentionLayers: [5]) }
    }

    /// The visual prefix holds BOS + the image tokens, and the reasoning cache continues from it exactly
    /// as one mixed prefill of [BOS][image][prompt text] would.
    @Test func prefixCacheContinuesTheVisualPrefix() throws {
        let model = Models.stories
        let prepared = try Self.frontEnd.prepare(LLaVAModels.image("chelsea.png"), precomputed: nil, compute: ComputeContext())
        let visual = try #require(prepared.visualPrefix)
        #expect(visual.cache.count == 1 + 16 && visual.leadingTokens == [1])
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
        _ = try cache.extend(to: prompt, model: model, visual: longer, compute: ComputeContext())
        #expect(cache.cache.count == 32 + prompt.count)
    }

    @Test func classTokenShareIsSpreadOverTheGrid() {
        // Four tokens of a 2x2 grid: tokens 0...2 carry cells 1...3, token 3 (class) is spread evenly.
        let scores = LLaVAPreparedImage.gridScores([1, 2, 3, 4], cells: 4, classTokenLast: true)
        #expect(scores == [0.1, 0.2, 0.3, 0.4].map(Float.init))
        #expect(LLaVAPreparedImage.gridScores([0, 0, 0, 0], cells: 4, classTokenLast: true) == [0.25, 0.25, 0.25, 0.25])
    }

    /// End to end with stories260K and the random mmproj: every stage, one normalised map per step on
    /// the 4x4 grid, selections and looks inside the image, looks adding image tokens.
    @Test(arguments: ["chelsea.png", "coins.png", "astronaut.png"])
    func allStagesMapsAndLooks(_ imageName: String) throws {
        let image = try LLaVAModels.image(imageName)
        var configuration = smallConfiguration()
        configuration.heatmaps = .inline
        configuration.selection = .box(mass: 0.4)
        configuration.maxLooks = 2
        configuration.maxSteps = 3
        configuration.maxTokensPerStage = 40
        let reasoner = try VisualReasoner(frontEnd: LLaVAFrontEnd(tower: LLaVAModels.tower, languageModel: Models.stories),
                                          languageModel: Models.stories, configuration: configuration)
        let log = EventLog()
        let result = try reasoner.run(image: image, question: "What is in the picture?", onEvent: log.record)
        try #require(result.outcome == .completed, "\(result.outcome)\n\(result.transcript)")
        #expect(result.stages.map(\.tag) == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"])
        #expect(result.stages.allSatisfy { $0.complete && $0.generatedTokens > 0 })
        #expect(result.transcript.contains("[whole image: 16 image tokens"))

        #expect(!result.steps.isEmpty && log.attributions.map(\.step) == result.steps.map(\.index))
        for attribution in log.attributions {
            let map = attribution.map
            #expect(map.gridHeight == 4 && map.gridWidth == 4 && map.scores.count == 16)
            #expect(map.scores.allSatisfy { $0.isFinite && $0 >= 0 } && abs(map.scores.reduce(0, +) - 1) < 1e-5)
            let selection = try #require(attribution.selection)
            #expect(inside(selection.pixelBox, image) && selection.mass >= 0.4 - 1e-5)
            let heatmap = try PNGDecoder().decode(try #require(attribution.heatmapPNG))
            #expect(isHeatmapLayout(heatmap, of: image))
        }
        #expect(log.looks.count <= 2)
        for look in log.looks {
            guard case let .look(_, box) = look.evidence.source else { Issue.record("not a look"); continue }
            #expect(inside(box, image))
            #expect(result.transcript.contains("[\(look.evidence.text)]"))
        }
        print("LLaVA run \(imageName): \(result.steps.count) steps, \(log.looks.count) looks, "
              + "\(result.timings.generatedTokens) tokens, first map \(log.attributions.first?.map.scores.map { String(format: "%.3f", $0) } ?? [])")
    }

    @Test func gridBoxesMapInsideTheImage() throws {
        let prepared = try Self.frontEnd.prepare(LLaVAModels.image("chelsea.png"), precomputed: nil, compute: ComputeContext())
        // 451x300 sits at canvas y 5...27 of 32: the top row of cells is mostly padding, still clamped inside.
        let whole = prepared.pixelBox(of: GridBox(row: 0, column: 0, rows: 4, columns: 4))
        #expect(whole == PixelBox(x: 0, y: 0, width: 451, height: 300))
        for r in 0..<4 { for c in 0..<4 {
            let box = prepared.pixelBox(of: GridBox(row: r, column: c, rows: 1, columns: 1))
            #expect(inside(box, prepared.image))
        } }
        let topLeft = prepared.pixelBox(of: GridBox(row: 0, column: 0, rows: 2, columns: 2))
        // Canvas 0..<16 x 0..<16 -> image x 0..<226 (16 * 451/32 = 225.5), y 0..<(16-5)*300/22 = 150.
        #expect(topLeft == PixelBox(x: 0, y: 0, width: 226, height: 150))
    }

    /// A tall image, worked by hand: 100x300 fits the 32-px canvas as 11x32 (ceil(100 * 32/300)) at
    /// x = 10, so 8-px cell column c covers image x (8c - 10) * 100/11 ..< (8c - 2) * 100/11, row r
    /// covers y 75r ..< 75r + 75.
    @Test func tallImageCellsMapToTheirPixels() throws {
        let image = try RGBImage(width: 100, height: 300, fill: (200, 40, 40))
        let prepared = try Self.frontEnd.prepare(image, precomputed: nil, compute: ComputeContext())
        #expect(prepared.pixelBox(of: GridBox(row: 1, column: 1, rows: 1, columns: 1)) == PixelBox(x: 0, y: 75, width: 55, height: 75))
        #expect(prepared.pixelBox(of: GridBox(row: 2, column: 2, rows: 1, columns: 1)) == PixelBox(x: 54, y: 150, width: 46, height: 75))
        #expect(prepared.pixelBox(of: GridBox(row: 0, column: 0, rows: 4, columns: 4)) == PixelBox(x: 0, y: 0, width: 100, height: 300))
    }
}
