import Foundation
import Testing
import VLMImage
@testable import VLMReasoning

/// A SmolVLM-256M-sized idefics3 tower against llama.cpp, when its files were made:
/// `/work/refvenv/bin/python scripts/fixtures/make_idefics3_fixtures.py --bench DIR`, then
/// `VLMD_IDEFICS3_BENCH=DIR swift test --filter Idefics3Bench`. Too large to commit; skipped otherwise.
@Suite struct Idefics3BenchTests {
    static let directory = ProcessInfo.processInfo.environment["VLMD_IDEFICS3_BENCH"].map { URL(fileURLWithPath: $0) }

    struct Reference: Decodable {
        struct Chunk: Decodable { let image: Int?; let embeddings: [Float]? }
        let seconds: Double
        let chunks: [Chunk]
    }

    @Test(.enabled(if: directory != nil)) func smolVLMSizedTowerMatchesLlamaCpp() throws {
        let directory = try #require(Self.directory)
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: directory.appendingPathComponent("bench-reference.json")))
        let projector = try Idefics3Projector(url: directory.appendingPathComponent("bench-mmproj.gguf"))
        let views = try projector.preprocessing.views(LLaVAModels.image("astronaut.png"))
        let all = views.tiles + [views.global]
        _ = try projector.encode(all[0])  // warm-up (page in the mapped weights)
        var best = Double.infinity
        for view in all.prefix(3) {
            let start = Date()
            _ = try projector.encode(view)
            best = min(best, Date().timeIntervalSince(start))
        }
        let first = try projector.encode(all[0]), theirs = try #require(reference.chunks.compactMap(\.embeddings).first)
        var difference: Float = 0, norm: Float = 0
        for (x, y) in zip(first, theirs) { difference += (x - y) * (x - y); norm += y * y }
        print("idefics3 bench: \(projector.tokensPerView) tokens per \(projector.hyperparameters.imageSize) px view in \(String(format: "%.3f", best)) s (llama.cpp \(String(format: "%.3f", reference.seconds)) s), relative error \((difference / norm).squareRoot())")
        #expect(first.count == theirs.count && (difference / norm).squareRoot() < 1e-2)
    }
}
