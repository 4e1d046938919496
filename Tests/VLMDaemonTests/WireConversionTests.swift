import Foundation
import Testing
import VLMWire
@testable import VLMDaemon
@testable import VLMPromptLearning
@testable import VLMReasoning
import VLMTensor

/// The engine values whose wire form differs on purpose, each through its one conversion function,
/// checked against the JSON a client receives (written out here, not produced by the code under test).
struct WireConversionTests {
    let box = PixelBox(x: 1, y: 2, width: 30, height: 40)
    let tags = [LabelProbability(label: "cat", probability: 0.75)]

    func json(_ value: some Encodable) throws -> JSONValue { try JSONCoding.value(of: value) }

    @Test func evidenceSourcesBecomeFlatTags() throws {
        #expect(try json(wireEvidence(Evidence(source: .wholeImage, tags: tags, text: "a cat"))) ==
                ["source": "image", "tags": [["label": "cat", "probability": 0.75]], "text": "a cat"])
        #expect(try json(wireEvidence(Evidence(source: .region(name: "top left", box: box), tags: [], text: "t"))) ==
                ["source": "region", "region": "top left", "box": ["x": 1, "y": 2, "width": 30, "height": 40], "tags": [], "text": "t"])
        #expect(try json(wireEvidence(Evidence(source: .look(step: 3, box: box), tags: [], text: "l"))) ==
                ["source": "look", "step": 3, "box": ["x": 1, "y": 2, "width": 30, "height": 40], "tags": [], "text": "l"])
    }

    @Test func attributionMovesTheMapUpAndEncodesTheHeatmapAsBase64() throws {
        let selection = PatchSelectionResult(method: "box", cells: [0, 1], gridBox: GridBox(row: 0, column: 0, rows: 1, columns: 2),
                                             pixelBox: box, mass: 0.5)
        let attribution = StepAttribution(
            step: 2, text: "the cat", map: AttributionMap(gridHeight: 1, gridWidth: 2, scores: [0.25, 0.75], normalization: "min-max"),
            selection: selection, heatmapPNG: [0x89, 0x50, 0x4E, 0x47], heatmapPath: nil)
        #expect(try json(wireAttribution(attribution)) == [
            "step": 2, "text": "the cat", "gridHeight": 1, "gridWidth": 2, "scores": [0.25, 0.75], "normalization": "min-max",
            "selection": ["method": "box", "cells": [0, 1], "gridBox": [0, 0, 1, 2], "pixelBox": ["x": 1, "y": 2, "width": 30, "height": 40],
                          "mass": 0.5],
            "heatmapPNG": "iVBORw==",
        ])
    }

    @Test func eventsBecomeTaggedObjects() throws {
        #expect(try json(wireEvent(.stageBegan(index: 1, tag: "CAPTION"))) == ["event": "stage", "phase": "begin", "stageIndex": 1, "stage": "CAPTION"])
        #expect(try json(wireEvent(.stageEnded(index: 1, tag: "CAPTION", text: "x"))) ==
                ["event": "stage", "phase": "end", "stageIndex": 1, "stage": "CAPTION", "text": "x"])
        #expect(try json(wireEvent(.token(stage: "REASONING", step: 0, candidate: 2, text: "a"))) ==
                ["event": "token", "stage": "REASONING", "step": 0, "candidate": 2, "text": "a"])
        let verdict = JudgeVerdict(stage: "SUMMARY", step: nil, first: 0, second: 1, winner: 1, firstScore: -2.5, secondScore: -1.5)
        #expect(try json(wireEvent(.verdict(verdict))) == ["event": "verdict", "verdict": [
            "stage": "SUMMARY", "first": 0, "second": 1, "winner": 1, "firstScore": -2.5, "secondScore": -1.5]])
        let look = LookEvent(step: 4, evidence: Evidence(source: .look(step: 4, box: box), tags: [], text: "l"), seconds: 0.5)
        #expect(try json(wireEvent(.look(look)))["step"] == 4)
        #expect(try json(wireEvent(.look(look)))["seconds"] == 0.5)
        #expect(try json(wireEvent(.evidence(Evidence(source: .wholeImage, tags: [], text: "e"))))["event"] == "evidence")
    }

    @Test func outcomesBecomeOutcomeAndFailure() throws {
        func result(_ outcome: ReasoningResult.Outcome) -> ReasoningResult {
            ReasoningResult(outcome: outcome, stages: [], answer: "", steps: [], evidence: [], verdicts: [], transcript: "",
                            timings: ReasoningTimings())
        }
        #expect(wireResult(result(.completed)).outcome == "completed" && wireResult(result(.completed)).failure == nil)
        #expect(wireResult(result(.cancelled)).outcome == "cancelled")
        let failed = wireResult(result(.failed("context full")))
        #expect(failed.outcome == "failed" && failed.failure == "context full")
    }

    @Test func promptLearningMethodsGoByTheirProtocolNames() throws {
        for (name, method) in [("coop", PromptLearningConfiguration.Method.soft), ("pez", .projected), ("bank", .templateBank),
                               ("lm", .languageModel)] {
            let params = OptimisePromptParams(dataset: PromptDatasetParam(path: "/d"), method: name)
            #expect(try promptConfiguration(params).method == method)
            #expect(wireName(of: method) == name)
        }
        #expect(throws: RPCError.self) { try promptConfiguration(OptimisePromptParams(dataset: PromptDatasetParam(path: "/d"), method: "soft")) }
    }

    @Test func reasoningParamsBecomeTheEngineConfiguration() throws {
        var params = VisualReasoningParams(image: ImageInput(path: "/i.png"), question: "q")
        params.judge = "loglik"
        params.regionGrid = [3, 4]
        params.stages = [StageParam(tag: "A", instruction: "i", role: "answer")]
        let configuration = try reasoningConfiguration(params)
        #expect(configuration.judge == .logLikelihood)
        #expect(configuration.regionGrid.rows == 3 && configuration.regionGrid.columns == 4)
        #expect(configuration.stages.map(\.role) == [.answer])
        params.judge = "vote"
        #expect(throws: RPCError.self) { try reasoningConfiguration(params) }
    }
}
