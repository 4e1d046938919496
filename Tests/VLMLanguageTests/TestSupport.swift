import Foundation
import Testing
@testable import VLMLanguage

/// Locations of test inputs, all derived from this file's path.
enum TestPaths {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let fixtures = testsDirectory.appendingPathComponent("Fixtures")
    static let packageRoot = testsDirectory.deletingLastPathComponent().deletingLastPathComponent()
    static let shared = packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    static let stories = shared.appendingPathComponent("models/stories260K.gguf")

    /// SmolLM2-135M-Instruct Q4_1: `$VLMD_MODEL_CACHE/` or `<repo>/models-cache/` (scripts/get-smollm2.sh).
    static var smolLM2: URL? { cachedModel("SmolLM2-135M-Instruct.Q4_1.gguf") }

    /// Gemma-3-270M Q4_K_M, found the same way (scripts/get-gemma3.sh).
    static var gemma3: URL? { cachedModel("gemma-3-270m-q4_k_m.gguf") }

    /// The tiny random-weight models of scripts/fixtures/make_arch_fixtures.py.
    static func tinyModel(_ name: String) -> URL { fixtures.appendingPathComponent("models/\(name)-tiny.gguf") }

    static func cachedModel(_ name: String) -> URL? {
        var candidates: [URL] = []
        if let dir = ProcessInfo.processInfo.environment["VLMD_MODEL_CACHE"] {
            candidates.append(URL(fileURLWithPath: dir).appendingPathComponent(name))
        }
        candidates.append(packageRoot.appendingPathComponent("models-cache").appendingPathComponent(name))
        return candidates.first { FileManager.default.fileExists(atPath: $0.path) }
    }

    static var requireModels: Bool { ProcessInfo.processInfo.environment["VLMD_REQUIRE_MODELS"] == "1" }
}

func loadJSON(_ url: URL) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
}

func int32s(_ any: Any?) -> [Int32] { (any as? [Any] ?? []).map { Int32(($0 as! NSNumber).intValue) } }

// MARK: - llama.cpp parity fixtures (runs of `prompt`, `prompt_ids`, `greedy_ids`, `stop`, `top5`)

/// Greedy continuations of a fixture's runs (`prompt`, `prompt_ids`, `greedy_ids`, `stop`) match llama.cpp's.
func expectGreedyParity(_ model: LanguageModel, runs: [[String: Any]], maxTokens: Int, label: String) throws {
    for run in runs {
        let prompt = run["prompt"] as! String, expected = int32s(run["greedy_ids"])
        let ids = model.tokenizer.encode(prompt, addSpecial: true, parseSpecial: true)
        #expect(ids == int32s(run["prompt_ids"]), "\(label): prompt ids of \(prompt.debugDescription)")
        let result = try model.generate(prompt: int32s(run["prompt_ids"]), parameters: SamplingParameters(maxTokens: maxTokens))
        #expect(result.tokenIDs == expected, "\(label): \(prompt.debugDescription)")
        #expect(result.stopReason.rawValue == run["stop"] as! String, "\(label): \(prompt.debugDescription)")
        if let text = run["greedy_text"] as? String { #expect(result.text == text, "\(label): \(prompt.debugDescription)") }
    }
}

/// The largest |logit - llama.cpp| over the fixture's top-5 entries along its greedy path
/// (teacher-forced), checking each step's argmax on the way.
func worstTop5Difference(_ model: LanguageModel, runs: [[String: Any]], label: String) throws -> Float {
    var worst: Float = 0
    for run in runs {
        let prompt = int32s(run["prompt_ids"]), path = int32s(run["greedy_ids"])
        var cache = model.transformer.makeCache(capacity: model.contextLength)
        var logits = try model.prefill(prompt, cache: &cache)
        var step = 0
        for top in run["top5"] as! [[String: Any]] {
            let target = top["step"] as! Int
            while step < target {
                logits = try model.transformer.forward([path[step]], cache: &cache).logits
                step += 1
            }
            let ids = int32s(top["ids"]), values = (top["logits"] as! [Double]).map(Float.init)
            for (id, value) in zip(ids, values) { worst = max(worst, abs(logits[Int(id)] - value)) }
            #expect(Int32(Sampler.argmax(logits)) == ids[0], "\(label): argmax at step \(target)")
        }
    }
    return worst
}
