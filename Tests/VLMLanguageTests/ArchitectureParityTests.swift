// Token-for-token parity with llama.cpp for each family of the architecture registry: the real
// Gemma-3-270M (scripts/fixtures/make_gemma3_fixtures.py) and tiny random-weight qwen2, qwen3 and
// Llama 3 files in llama.cpp's layout (scripts/fixtures/make_arch_fixtures.py).
import Foundation
import Testing
@testable import VLMLanguage

@Suite struct TinyArchitectureParityTests {
    static func fixture() throws -> [String: Any] { try loadJSON(TestPaths.fixtures.appendingPathComponent("arch.lm.json")) }

    @Test(arguments: ["qwen2", "qwen3", "llama3"]) func greedyContinuations(_ name: String) throws {
        let model = try LanguageModel(path: TestPaths.tinyModel(name), contextLength: 512, threads: 2)
        let fixture = try Self.fixture()
        let entry = (fixture["models"] as! [String: Any])[name] as! [String: Any]
        let runs = entry["greedy"] as! [[String: Any]]
        try expectGreedyParity(model, runs: runs, maxTokens: fixture["max_tokens"] as! Int, label: name)
        let worst = try worstTop5Difference(model, runs: runs, label: name)
        #expect(worst == 0, "\(name): max |logit - llama.cpp| over top-5 = \(worst)")
    }

    @Test func familiesComeFromTheRegistry() throws {
        let families = try ["qwen2", "qwen3", "llama3"].map {
            try LanguageModel(path: TestPaths.tinyModel($0), contextLength: 64, threads: 1).hyperparameters.family
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
