import Foundation
import Testing
import VLMImage
@testable import VLMReasoning

/// Middling-sized Qwen2-VL and Qwen2.5-VL towers against llama.cpp, when their files were made:
/// `/work/refvenv/bin/python scripts/fixtures/make_qwen2vl_fixtures.py --bench DIR`, then
/// `VLMD_QWEN2VL_BENCH=DIR swift test --filter Qwen2VLBench`. Too large to commit; skipped otherwise.
@Suite(.serialized) struct Qwen2VLBenchTests {  // one tower at a time, as llama.cpp was timed
    static let directory = ProcessInfo.processInfo.environment["VLMD_QWEN2VL_BENCH"].map { URL(fileURLWithPath: $0) }

    struct Reference: Decodable {
        struct Tower: Decodable { let seconds: Double; let tokens: Int; let embeddings: [Float] }
        let towers: [String: Tower]
    }

    @Test(.enabled(if: directory != nil), arguments: Qwen2VLProjector.fileTypes) func towerMatchesLlamaCpp(_ type: String) throws {
        let directory = try #require(Self.directory)
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: directory.appendingPathComponent("bench-reference.json")))
        let theirs = try #require(reference.towers[type])
        let projector = try Qwen2VLProjector(url: directory.appendingPathComponent("bench-\(type).gguf"), tokenLimits: 8...256)
        let image = try LLaVAModels.image("astronaut.png")
        var (ours, _) = try projector.encode(image)  // warm-up (page in the mapped weights)
        var best = Double.infinity
        for _ in 0..<3 {
            let start = Date()
            (ours, _) = try projector.encode(image)
            best = min(best, Date().timeIntervalSince(start))
        }
        var difference: Float = 0, norm: Float = 0
        for (x, y) in zip(ours, theirs.embeddings) { difference += (x - y) * (x - y); norm += y * y }
        let relative = (difference / norm).squareRoot()
        print("\(type) bench: \(theirs.tokens) tokens in \(String(format: "%.3f", best)) s (llama.cpp \(String(format: "%.3f", theirs.seconds)) s), relative error \(relative)")
        #expect(ours.count == theirs.embeddings.count && relative < 1e-2)
    }
}
