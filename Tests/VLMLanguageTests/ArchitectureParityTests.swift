// Token-for-token parity with llama.cpp for each family of the architecture registry: the real
// Gemma-3-270M (scripts/fixtures/make_gemma3_fixtures.py) and tiny random-weight qwen2, qwen3 and
// Llama 3 files in llama.cpp's layout (scripts/fixtures/make_arch_fixtures.py).
import Foundation
import Testing
@testable import VLMLanguage

let gemmaAvailable = TestPaths.gemma3 != nil || TestPaths.requireModels
let gemmaMissing: Comment = "gemma-3-270m-q4_k_m.gguf not found in $VLMD_MODEL_CACHE or <repo>/models-cache (run scripts/get-gemma3.sh); skipped"

@Suite(.serialized) struct Gemma3ParityTests {
    static let model: LanguageModel? = TestPaths.gemma3.map { try! LanguageModel(path: $0, contextLength: 1024) }

    static func loaded() throws -> (LanguageModel, [String: Any]) {
        let model = try #require(model, "Gemma 3 GGUF missing but VLMD_REQUIRE_MODELS=1 (run scripts/get-gemma3.sh)")
        return (model, try loadJSON(TestPaths.fixtures.appendingPathComponent("gemma3.lm.json")))
    }

    @Test(.enabled(if: gemmaAvailable, gemmaMissing)) func readsGemma3Hyperparameters() throws {
        let hp = try Self.loaded().0.hyperparameters
        #expect(hp.family == .gemma3 && hp.headDimension == 256 && hp.headCountKV == 1)
        #expect(hp.slidingWindow == 512 && hp.ropeFrequencyBase == 1_000_000 && hp.ropeFrequencyBaseLocal == 10000)
        // Every sixth layer attends globally.
        #expect((0..<hp.blockCount).filter { !hp.isSlidingWindowLayer($0) } == [5, 11, 17])
        #expect(hp.attentionScale == 1 / 16 && hp.finalLogitSoftcap == nil)
    }

    @Test(.enabled(if: gemmaAvailable, gemmaMissing)) func greedyContinuations() throws {
        let (model, fixture) = try Self.loaded()
        let runs = fixture["greedy"] as! [[String: Any]]
        // Prompts of 8+ tokens take llama.cpp's tiled q6_K matmul in the prefill, shorter ones vec_dot.
        #expect(runs.contains { int32s($0["prompt_ids"]).count < 8 } && runs.contains { int32s($0["prompt_ids"]).count >= 8 })
        try expectGreedyParity(model, runs: runs, maxTokens: fixture["max_tokens"] as! Int, label: "gemma3")
    }

    @Test(.enabled(if: gemmaAvailable, gemmaMissing)) func logitsAlongGreedyPath() throws {
        let (model, fixture) = try Self.loaded()
        let worst = try worstTop5Difference(model, runs: fixture["greedy"] as! [[String: Any]], label: "gemma3")
        print("gemma3: max |logit - llama.cpp| over top-5 = \(worst)")
        #expect(worst == 0)
    }
}

@Suite struct TinyArchitectureParityTests {
    static func fixture() throws -> [String: Any] { try loadJSON(TestPaths.fixtures.appendingPathComponent("arch.lm.json")) }

    @Test(arguments: ["qwen2", "qwen3", "llama3"]) func greedyContinuations(_ name: String) throws {
        let model = try LanguageModel(path: TestPaths.tinyModel(name), contextLength: 512)
        let fixture = try Self.fixture()
        let entry = (fixture["models"] as! [String: Any])[name] as! [String: Any]
        let runs = entry["greedy"] as! [[String: Any]]
        try expectGreedyParity(model, runs: runs, maxTokens: fixture["max_tokens"] as! Int, label: name)
        let worst = try worstTop5Difference(model, runs: runs, label: name)
        #expect(worst == 0, "\(name): max |logit - llama.cpp| over top-5 = \(worst)")
    }

    @Test func familiesComeFromTheRegistry() throws {
        let families = try ["qwen2", "qwen3", "llama3"].map {
            try LanguageModel(path: TestPaths.tinyModel($0), contextLength: 64).hyperparameters.family
        }
        #expect(families == [.qwen2, .qwen3, .llama])
        #expect(families[0].attentionBias && !families[1].attentionBias && families[1].queryKeyNorm)
    }

    @Test func unknownArchitectureIsNamed() throws {
        var b = GGUFBuilder(version: 3)
        b.add("general.architecture", string: "mamba")
        let error = try withTemporaryFile(b.build()) { url in
            #expect(throws: LanguageModelError.unsupportedArchitecture("mamba")) { _ = try LanguageModel(path: url) }
            return LanguageModelError.unsupportedArchitecture("mamba").description
        }
        #expect(error.contains("'mamba'") && error.contains("gemma3") && error.contains("qwen2"), "\(error)")
    }
}

@Suite struct GELUTableTests {
    /// Gemma's GeGLU looks GELU up by fp16 value: our table is ggml's, value for value.
    @Test func geluTableIsGGMLs() throws {
        let fixture = try loadJSON(TestPaths.fixtures.appendingPathComponent("ggml_gelu_table.json"))
        let bytes = try #require(Data(base64Encoded: fixture["fp16_le_base64"] as! String))
        let reference = bytes.withUnsafeBytes { raw in (0..<65536).map { raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self) } }
        let ours = LayerMath.geluTable.map(\.bitPattern)
        // NaN inputs give NaN either way; only their payload bits may differ.
        let differing = (0..<65536).filter { ours[$0] != reference[$0] && !Float16(bitPattern: UInt16($0)).isNaN }
        #expect(differing.isEmpty, "\(differing.count) entries differ, first at fp16 bits \(differing.prefix(5))")
    }
}
