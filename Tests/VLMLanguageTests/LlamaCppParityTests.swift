// Token-for-token parity with llama.cpp (fixtures: scripts/fixtures/make_lm_fixtures.py).
import Foundation
import Testing
@testable import VLMLanguage

/// One model's fixture file and the tolerances its weight format allows.
struct ParityCase: CustomTestStringConvertible, Sendable {
    let name: String
    let fixture: String
    /// Absolute logit tolerance. The quantised path reproduces llama.cpp's arithmetic bit for bit (0);
    /// F32 weights go through OpenBLAS, whose summation order differs from ggml's (~1e-3).
    let logitTolerance: Float
    var testDescription: String { name }

    static let stories = ParityCase(name: "stories260K", fixture: "stories260K.lm.json", logitTolerance: 0.01)
    static let smolLM2 = ParityCase(name: "SmolLM2-135M Q4_1", fixture: "smollm2.lm.json", logitTolerance: 0)

    var url: URL? { name == "stories260K" ? TestPaths.stories : TestPaths.smolLM2 }
}

/// Loaded once per process: the models are read-only.
enum LoadedModels {
    static let stories = try! LanguageModel(path: TestPaths.stories, contextLength: 256)
    static let smolLM2: LanguageModel? = TestPaths.smolLM2.map { try! LanguageModel(path: $0, contextLength: 1024) }

    static func model(for c: ParityCase) -> LanguageModel? { c.name == "stories260K" ? stories : smolLM2 }
}

/// SmolLM2 tests run when the GGUF is present, and must run (failing if absent) when VLMD_REQUIRE_MODELS=1.
let smolAvailable = TestPaths.smolLM2 != nil || TestPaths.requireModels
let smolMissing: Comment = "SmolLM2-135M-Instruct.Q4_1.gguf not found in $VLMD_MODEL_CACHE or <repo>/models-cache (run scripts/get-smollm2.sh); skipped"

func parityModel(_ c: ParityCase) throws -> (LanguageModel, [String: Any]) {
    guard let model = LoadedModels.model(for: c) else {
        throw ModelMissing(message: "\(c.name): model file missing but VLMD_REQUIRE_MODELS=1")
    }
    return (model, try loadJSON(TestPaths.fixtures.appendingPathComponent(c.fixture)))
}

/// Prompts longer than this run only with VLMD_LONG_TESTS=1: a 779-token prefill is slow in builds
/// without hardware FMA (the default debug build), though it passes like the short ones.
func includeRun(_ run: [String: Any]) -> Bool {
    ProcessInfo.processInfo.environment["VLMD_LONG_TESTS"] == "1" || int32s(run["prompt_ids"]).count <= 64
}

struct ModelMissing: Error, CustomStringConvertible { let message: String; var description: String { message } }

@Suite struct LlamaCppParityTests {
    static let cases: [ParityCase] = [.stories] + (smolAvailable ? [.smolLM2] : [])

    /// Shows up as skipped (with the reason) when SmolLM2 is absent; fails if VLMD_REQUIRE_MODELS=1.
    @Test(.enabled(if: smolAvailable, smolMissing)) func smolLM2IsPresent() throws {
        let url = try #require(TestPaths.smolLM2, "SmolLM2 GGUF missing but VLMD_REQUIRE_MODELS=1 (run scripts/get-smollm2.sh)")
        #expect(LoadedModels.smolLM2?.description.quantization == "q4_1", "\(url.path)")
    }

    @Test(arguments: cases) func tokenization(_ c: ParityCase) throws {
        let (model, fixture) = try parityModel(c)
        for entry in fixture["tokenize"] as! [[String: Any]] {
            let text = entry["text"] as! String, special = entry["parse_special"] as! Bool
            let ids = model.tokenizer.encode(text, addSpecial: true, parseSpecial: special)
            #expect(ids == int32s(entry["ids"]), "\(c.name): \(text.debugDescription) parseSpecial=\(special)")
        }
    }

    @Test(arguments: cases) func greedyContinuations(_ c: ParityCase) throws {
        let (model, fixture) = try parityModel(c)
        try expectGreedyParity(model, runs: (fixture["greedy"] as! [[String: Any]]).filter(includeRun), maxTokens: 80, label: c.name)
    }

    /// The top-5 logits along llama.cpp's greedy path (teacher-forced), within the format's tolerance.
    @Test(arguments: cases) func logitsAlongGreedyPath(_ c: ParityCase) throws {
        let (model, fixture) = try parityModel(c)
        let worst = try worstTop5Difference(model, runs: (fixture["greedy"] as! [[String: Any]]).filter(includeRun), label: c.name)
        print("\(c.name): max |logit - llama.cpp| over top-5 = \(worst)")
        #expect(worst <= c.logitTolerance)
    }

    @Test(arguments: cases) func continuationScores(_ c: ParityCase) throws {
        let (model, fixture) = try parityModel(c)
        let score = fixture["score"] as! [String: Any]
        let entries = score["continuations"] as! [[String: Any]]
        let ours = try model.score(context: int32s(score["context"]), continuations: entries.map { int32s($0["continuation"]) })
        for (mine, entry) in zip(ours, entries) {
            let reference = entry["logprob"] as! Double
            #expect(abs(mine - reference) <= 1e-4 + Double(c.logitTolerance) * 4, "\(c.name): \(mine) vs \(reference)")
        }
    }
}
