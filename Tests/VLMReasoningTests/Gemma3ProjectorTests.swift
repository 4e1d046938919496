import Foundation
import Testing
import VLMImage
@testable import VLMReasoning

/// llama.cpp's libmtmd on a random-initialised gemma3 mmproj (scripts/fixtures/make_gemma3_mmproj_fixtures.py).
@Suite struct Gemma3ProjectorTests {
    struct Reference: Decodable { let encodings: [Idefics3Reference.Encoding] }
    static let directory = TestPaths.fixtures.appendingPathComponent("gemma3")

    @Test func readsTheHeader() throws {
        let projector = try MultimodalProjectors.load(url: Self.directory.appendingPathComponent("tiny-mmproj.gguf"))
        let gemma3 = try #require(projector as? Gemma3Projector)
        #expect(gemma3.projectorType == "gemma3" && gemma3.outputWidth == 64 && gemma3.poolSize == 2 && gemma3.tokenCount == 4)
        #expect(gemma3.hyperparameters.blocksRun == gemma3.hyperparameters.blockCount)
    }

    /// transformers' AvgPool2d over 2x2 blocks of a 4x4 grid of one-value patches numbered row-major.
    @Test func averagePoolTakesBlockMeans() {
        let out = Gemma3Projector.averagePool((0..<16).map(Float.init), side: 4, width: 1, size: 2)
        #expect(out == [2.5, 4.5, 10.5, 12.5])
    }

    /// Square, wide (black bars top and bottom) and grayscale images: mtmd's chunks (the markers around
    /// the image tokens) and embeddings.
    @Test func chunksAndEmbeddingsMatchLlamaCpp() throws {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: Self.directory.appendingPathComponent("reference.json")))
        let projector = try Gemma3Projector(url: Self.directory.appendingPathComponent("tiny-mmproj.gguf"))
        try Idefics3ProjectorTests.check(reference.encodings, projector: projector)
    }

    @Test func rejectsBadFiles() {
        #expect(loadError { try Gemma3Projector(url: Self.directory.appendingPathComponent("bad-missing-projection.gguf")) }
            .contains("'mm.input_projection.weight': missing"))
        #expect(loadError { try Gemma3Projector(url: Idefics3Reference.mmproj) }.contains("projector type 'idefics3' is not 'gemma3'"))
    }
}
