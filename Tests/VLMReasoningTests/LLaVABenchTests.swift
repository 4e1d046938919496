import Foundation
import Testing
import VLMImage
@testable import VLMReasoning

/// A CLIP-ViT-B/16-sized LLaVA tower against llama.cpp, when its files were made:
/// `/work/refvenv/bin/python scripts/fixtures/make_llava_fixtures.py --bench DIR`, then
/// `VLMD_LLAVA_BENCH=DIR swift test --filter LLaVABench`. Too large to commit; skipped otherwise.
@Suite struct LLaVABenchTests {
    static let directory = ProcessInfo.processInfo.environment["VLMD_LLAVA_BENCH"].map { URL(fileURLWithPath: $0) }

    struct Reference: Decodable { let tokens: Int; let seconds: Double; let embeddings: [Float] }

    @Test(.enabled(if: directory != nil)) func baseSizedTowerMatchesLlamaCpp() throws {
        let directory = try #require(Self.directory)
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: directory.appendingPathComponent("bench-reference.json")))
        let tower = try LLaVAVisionTower(url: directory.appendingPathComponent("bench-mmproj.gguf"))
        let image = try LLaVAModels.image("chelsea.png")
        _ = try tower.encode(image)  // warm-up (page in the mapped weights)
        let start = Date()
        let ours = try tower.encode(image)
        let seconds = Date().timeIntervalSince(start)
        var maxError: Float = 0, dotProduct: Float = 0, a: Float = 0, b: Float = 0
        for (x, y) in zip(ours, reference.embeddings) {
            maxError = max(maxError, abs(x - y)); dotProduct += x * y; a += x * x; b += y * y
        }
        let cosine = dotProduct / (a * b).squareRoot()
        print("LLaVA bench: \(tower.tokenCount) tokens in \(String(format: "%.3f", seconds)) s (llama.cpp \(String(format: "%.3f", reference.seconds)) s), max |error| \(maxError), cosine \(cosine)")
        #expect(ours.count == reference.embeddings.count && cosine > 0.9999)
    }
}
