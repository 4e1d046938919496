// The engine end to end: stories260K as the language model, the tiny random CLIP models as the
// visual front end, on the shared photos.
import Foundation
import Testing
import VLMCLIP
import VLMImage
import VLMLanguage
@testable import VLMReasoning
import VLMTensor

/// Every event of a run, in order.
final class EventLog {
    var events: [ReasoningEvent] = []
    func record(_ event: ReasoningEvent) { events.append(event) }

    var stageBoundaries: [String] {
        events.compactMap {
            switch $0 {
            case let .stageBegan(_, tag): "begin \(tag)"
            case let .stageEnded(_, tag, _): "end \(tag)"
            default: nil
            }
        }
    }
    var attributions: [StepAttribution] { events.compactMap { if case let .attribution(a) = $0 { a } else { nil } } }
    var looks: [LookEvent] { events.compactMap { if case let .look(l) = $0 { l } else { nil } } }
    var verdicts: [JudgeVerdict] { events.compactMap { if case let .verdict(v) = $0 { v } else { nil } } }
    /// Streamed text per (stage, candidate) for whole-stage units.
    func streamed(stage: String, candidate: Int) -> String {
        events.compactMap {
            if case let .token(s, step, c, text) = $0, s == stage, step == nil, c == candidate { text } else { nil }
        }.joined()
    }
    /// A comparable rendering of the whole stream.
    var signature: [String] {
        events.map { event in
            // Wall times differ between runs; everything else must not.
            if case let .look(look) = event { return String(describing: look.evidence) }
            return String(describing: event)
        }
    }
}

func inside(_ box: PixelBox, _ image: RGBImage) -> Bool {
    box.x >= 0 && box.y >= 0 && box.width >= 1 && box.height >= 1 && box.x + box.width <= image.width && box.y + box.height <= image.height
}

func reasoner(_ clip: CLIPModel, _ configuration: ReasoningConfiguration, model: LanguageModel = Models.stories,
              judge: (any CandidateJudge)? = nil) throws -> VisualReasoner {
    let frontEnd = try CLIPFrontEnd(clip: clip, tokenizer: Models.clipTokenizer, preprocessing: Models.preprocessing(for: clip),
                                    configuration: configuration)
    return try VisualReasoner(frontEnd: frontEnd, languageModel: model, configuration: configuration, judge: judge)
}

@Suite struct ReasonerTests {
    static let cases: [(model: String, image: String)] = [("rn-tiny", "chelsea.png"), ("vit-tiny", "astronaut.png"), ("rn-tiny", "coins.png")]

    @Test(arguments: cases)
    func allStagesMapsHeatmapsAndLooks(_ modelName: String, _ imageName: String) throws {
        let clip = modelName == "rn-tiny" ? Models.rnTiny : Models.vitTiny
        let image = Models.image(imageName)
        let configuration = lookingConfiguration(looks: 4, steps: 4, tokensPerStage: 48)
        let log = EventLog()
        let result = try reasoner(clip, configuration).run(image: image, question: "What animal is in the picture?", onEvent: log.record)

        try #require(result.outcome == .completed, "\(result.outcome)\n\(result.transcript)")
        try #require(result.stages.map(\.tag) == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"])
        #expect(result.stages.allSatisfy { $0.complete && $0.generatedTokens > 0 && $0.tokensPerSecond > 0 })
        #expect(log.stageBoundaries == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"].flatMap { ["begin \($0)", "end \($0)"] })
        #expect(result.answer == result.stages[3].text)
        for tag in ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"] {
            #expect(result.transcript.contains("<\(tag)>") && result.transcript.contains("</\(tag)>"))
        }

        // Evidence: the whole image and four regions that tile it, probabilities sorted and in (0, 1].
        #expect(result.evidence.count == 5)
        var regionArea = 0
        for item in result.evidence {
            #expect(item.tags.count == 2 && item.tags[0].probability >= item.tags[1].probability)
            #expect(item.tags.allSatisfy { $0.probability > 0 && $0.probability <= 1 })
            if case let .region(_, box) = item.source { #expect(inside(box, image)); regionArea += box.width * box.height }
        }
        #expect(regionArea == image.width * image.height)
        #expect(result.transcript.contains("[whole image: "))

        // One attribution per step, on the tower's grid, normalised, with a heatmap of the photo's size.
        let dense = try clip.encodeImageDense(Models.preprocessing(for: clip)(image), count: 1)
        #expect(!result.steps.isEmpty)
        #expect(log.attributions.map(\.step) == result.steps.map(\.index))
        for attribution in log.attributions {
            let map = attribution.map
            #expect(map.gridHeight == dense.gridHeight && map.gridWidth == dense.gridWidth)
            #expect(map.scores.count == dense.gridHeight * dense.gridWidth)
            #expect(map.scores.allSatisfy { $0.isFinite && $0 >= 0 } && abs(map.scores.reduce(0, +) - 1) < 1e-5)
            let selection = try #require(attribution.selection)
            #expect(selection.cells.allSatisfy { (0..<map.scores.count).contains($0) } && selection.mass >= 0.4 - 1e-5)
            #expect(inside(selection.pixelBox, image))
            let heatmap = try PNGDecoder().decode(try #require(attribution.heatmapPNG))
            #expect(isHeatmapLayout(heatmap, of: image))
        }
        // Looks: one per step whose box is not the whole grid, up to maxLooks, each inside the image and in the context.
        #expect(log.looks.count == result.steps.filter { $0.look != nil }.count && log.looks.count <= 4)
        for look in log.looks {
            guard case let .look(step, box) = look.evidence.source else { Issue.record("not a look"); continue }
            #expect(inside(box, image) && result.steps.contains { $0.index == step })
            #expect(result.transcript.contains("[\(look.evidence.text)]"))
        }
        #expect(result.timings.firstTokenSeconds != nil && result.timings.generatedTokens > 0)
    }

    @Test func seededRunsAreReproducible() throws {
        var configuration = smallConfiguration()
        configuration.beamWidth = 2
        configuration.temperature = 0.9
        configuration.judge = .logLikelihood
        let engine = try reasoner(Models.rnTiny, configuration)
        let (first, second) = (EventLog(), EventLog())
        let a = try engine.run(image: Models.image("chelsea.png"), question: "Is there a cat?", onEvent: first.record)
        let b = try engine.run(image: Models.image("chelsea.png"), question: "Is there a cat?", onEvent: second.record)
        #expect(a.transcript == b.transcript && a.verdicts == b.verdicts)
        #expect(first.signature == second.signature)
        configuration.seed = 99
        let c = try reasoner(Models.rnTiny, configuration).run(image: Models.image("chelsea.png"), question: "Is there a cat?")
        #expect(c.transcript != a.transcript)
    }

    /// A judge that always prefers candidate 2: every whole-stage choice must be candidate 2's text.
    struct FavouriteJudge: CandidateJudge {
        func scores(_ request: JudgeRequest, compute: ComputeContext) throws -> (first: Double, second: Double) {
            (request.first.index == 2 ? 1 : 0, request.second.index == 2 ? 1 : 0)
        }
    }

    @Test func stubJudgeDecidesTheChosenCandidate() throws {
        var configuration = smallConfiguration()
        configuration.beamWidth = 4
        configuration.temperature = 1
        let log = EventLog()
        let result = try reasoner(Models.rnTiny, configuration, judge: FavouriteJudge())
            .run(image: Models.image("chelsea.png"), question: "What is it?", onEvent: log.record)
        let parser = StageParser(tags: configuration.stages.map(\.tag))
        for stage in ["SUMMARY", "CAPTION", "CONCLUSION"] {
            let chosen = result.stages.first { $0.tag == stage }!.text
            #expect(chosen == parser.stageContent(log.streamed(stage: stage, candidate: 2)).content, "\(stage)")
            // Four candidates: three matches per unit, the last won by 2.
            let verdicts = log.verdicts.filter { $0.stage == stage }
            #expect(verdicts.count == 3 && verdicts.last!.winner == 2)
        }
    }

    /// The real pairwise judge (stories260K scoring "1" against "2"): each match goes to the higher score
    /// and the stage keeps the final winner's text.
    @Test func pairwiseJudgeWithTheRealModel() throws {
        var configuration = smallConfiguration()
        configuration.beamWidth = 3
        configuration.temperature = 1
        configuration.stages = Array(configuration.stages.prefix(1))
        let log = EventLog()
        let result = try reasoner(Models.rnTiny, configuration).run(image: Models.image("coffee.png"), question: "What drink?",
                                                                  onEvent: log.record)
        let verdicts = log.verdicts
        #expect(verdicts.count == 2 && result.verdicts == verdicts)
        for v in verdicts {
            #expect(v.firstScore.isFinite && v.secondScore.isFinite && v.firstScore < 0 && v.secondScore < 0)
            #expect(v.winner == (v.secondScore > v.firstScore ? v.second : v.first))
        }
        let parser = StageParser(tags: ["SUMMARY"])
        #expect(result.stages[0].text == parser.stageContent(log.streamed(stage: "SUMMARY", candidate: verdicts.last!.winner)).content)
    }

    @Test func cancellationMidStageStopsWithinOneToken() throws {
        var configuration = smallConfiguration()
        configuration.beamWidth = 2
        configuration.temperature = 0.8
        var tokens = 0, tokensAfterCancel = 0
        let cancellation = CancellationToken()
        let result = try reasoner(Models.rnTiny, configuration).run(
            image: Models.image("chelsea.png"), question: "What is it?", compute: ComputeContext(cancellation: cancellation),
            onEvent: { event in
                guard case .token = event else { return }
                if cancellation.isCancelled { tokensAfterCancel += 1 }
                tokens += 1
                if tokens == 30 { cancellation.cancel() }  // inside the second stage's candidates
            })
        #expect(result.outcome == .cancelled)
        #expect(tokensAfterCancel == 0)
        #expect(result.stages.count >= 1 && result.stages.last!.complete == false)
        #expect(result.stages.dropLast().allSatisfy { $0.complete })
    }

    @Test func errorsBeforeGeneration() throws {
        let engine = try reasoner(Models.rnTiny, smallConfiguration())
        let photo = Models.image("chelsea.png")
        #expect(throws: ReasoningError.invalidConfiguration("the question is empty")) { try engine.run(image: photo, question: "  ") }
        do {
            _ = try engine.run(image: photo, question: String(repeating: "cat ", count: 800))
            Issue.record("a question longer than the context was accepted")
        } catch let ReasoningError.contextTooSmall(needed, capacity) {
            #expect(needed > capacity && capacity == Models.stories.contextLength)
        }
        let thin = try RGBImage(width: 2, height: 100, fill: (1, 2, 3))
        #expect(throws: ReasoningError.self) { try engine.run(image: thin, question: "what?") }
        let dot = try RGBImage(width: 1, height: 1, fill: (1, 2, 3))
        #expect(throws: ReasoningError.self) { try engine.run(image: dot, question: "what?") }  // smaller than the 2x2 regions
        let cancelled = CancellationToken()
        cancelled.cancel()
        #expect(throws: ComputeCancelled.self) {
            try engine.run(image: photo, question: "what?", compute: ComputeContext(cancellation: cancelled))
        }
        #expect(throws: ReasoningError.self) {
            try engine.run(image: photo, question: "what?", precomputed: PrecomputedImageFeatures(globalEmbedding: [1, 2, 3]))
        }

        for change in [{ (c: inout ReasoningConfiguration) in c.beamWidth = 9 }, { $0.beamWidth = 0 }, { $0.selection = .box(mass: 0) },
                       { $0.selection = .topK(0) }, { $0.maxLooks = -1 }, { $0.stages = [] }, { $0.labelBank = ["cat", "cat"] },
                       { $0.stages[0].tag = "A B" }, { $0.tagsPerRegion = 10 }, { $0.regionGrid = (5, 1) }, { $0.temperature = -1 },
                       { $0.normalization = .softmax(temperature: 0) }] {
            var configuration = smallConfiguration()
            change(&configuration)
            #expect(throws: ReasoningError.self) { try reasoner(Models.rnTiny, configuration) }
        }
        var topK = smallConfiguration()
        topK.selection = .topK(5)  // rn-tiny's grid is 2x2
        #expect(throws: ReasoningError.self) { try reasoner(Models.rnTiny, topK).run(image: photo, question: "what?") }

        let missing = URL(fileURLWithPath: "/nonexistent/model.gguf")
        #expect(throws: ReasoningError.missingModel(missing.path)) {
            try VisualReasoner.load(clipDirectory: TestPaths.clip("rn-tiny"), languageModelPath: missing, configuration: smallConfiguration())
        }
    }

    /// A context that fills during generation ends the run as failed, keeping the stages written.
    @Test func contextFillingMidRunKeepsWhatWasProduced() throws {
        let configuration = smallConfiguration()
        let probe = PromptBuilder(model: Models.stories, stages: configuration.stages, question: "What is it?")
        let promptTokens = probe.tokens("").count
        let small = try LanguageModel(path: TestPaths.stories, contextLength: promptTokens + 200)
        let result = try reasoner(Models.rnTiny, configuration, model: small).run(image: Models.image("chelsea.png"), question: "What is it?")
        guard case let .failed(message) = result.outcome else { Issue.record("outcome \(result.outcome)"); return }
        #expect(message.contains("context"))
        #expect(!result.stages.isEmpty && result.stages.first!.complete)
    }

    /// Features the caller cached give the same run as encoding the image again.
    @Test func precomputedFeaturesAndHeatmapFiles() throws {
        var configuration = smallConfiguration()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vlm-reasoning-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)  // heatmaps go only into an existing folder
        defer { try? FileManager.default.removeItem(at: directory) }
        configuration.heatmaps = .directory(directory)
        configuration.selection = .topK(2)
        let clip = Models.vitTiny
        let image = Models.image("motorcycle_left.png")
        let engine = try reasoner(clip, configuration)
        let precomputed = try (engine.frontEnd as! CLIPFrontEnd).features(of: image)
        let pixels = Models.preprocessing(for: clip)(image)
        #expect(precomputed.globalEmbedding == (try clip.encodeImages(pixels, count: 1)[0]))
        #expect(precomputed.dense?.features == (try clip.encodeImageDense(pixels, count: 1).features[0]))
        let fresh = try engine.run(image: image, question: "What vehicle?")
        let cached = try engine.run(image: image, question: "What vehicle?", precomputed: precomputed)
        #expect(fresh.transcript == cached.transcript)
        #expect(fresh.steps.map { $0.attribution?.map } == cached.steps.map { $0.attribution?.map })
        for step in cached.steps {
            let path = try #require(step.attribution?.heatmapPath)
            let heatmap = try PNGDecoder().decode(contentsOf: path)
            #expect(isHeatmapLayout(heatmap, of: image))
            #expect(step.attribution?.selection?.cells.count == 2)
        }
    }
}
