import Foundation
import Testing
import VLMImage
import VLMLanguage
@testable import VLMReasoning
import VLMTensor

/// llama.cpp's libmtmd on a random-initialised gemma3 mmproj (scripts/fixtures/make_gemma3_mmproj_fixtures.py).
@Suite struct Gemma3ProjectorTests {
    struct Reference: Decodable {
        let encodings: [Idefics3Reference.Encoding]
        let marker: String
        /// Greedy runs with tiny-lm.gguf (a random gemma3 language model).
        let greedy: [Idefics3Reference.Run]
    }
    static let directory = TestPaths.fixtures.appendingPathComponent("gemma3")
    static let reference = try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: directory.appendingPathComponent("reference.json")))
    static let languageModel = try! LanguageModel(path: directory.appendingPathComponent("tiny-lm.gguf"), contextLength: 512)

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
        let projector = try Gemma3Projector(url: Self.directory.appendingPathComponent("tiny-mmproj.gguf"))
        try Idefics3ProjectorTests.check(Self.reference.encodings, projector: projector)
    }

    /// "text <__media__> text" prompts through a random gemma3 language model, which decodes the image's
    /// tokens with causal attention off (as mtmd does for gemma3): llama.cpp's greedy token ids.
    @Test func greedyTokensMatchLlamaCpp() throws {
        let projector = try Gemma3Projector(url: Self.directory.appendingPathComponent("tiny-mmproj.gguf"))
        #expect(try projector.imageTokens(for: RGBImage(width: 8, height: 8, fill: (1, 2, 3)), compute: ComputeContext()).layout.attention == .bidirectional)
        try Idefics3LanguageParityTests.check(Self.reference.greedy, marker: Self.reference.marker, model: Self.languageModel,
                                              projector: projector)
    }

    /// The fixture tells the two attentions apart: decoding the same image tokens causally leaves
    /// llama.cpp's greedy path in at least one run.
    @Test func causalImageTokensDepartFromLlamaCpp() throws {
        let projector = try Gemma3Projector(url: Self.directory.appendingPathComponent("tiny-mmproj.gguf"))
        let model = Self.languageModel
        let departures = try Self.reference.greedy.filter { run in
            var image = try projector.imageTokens(for: LLaVAModels.image(run.image), compute: ComputeContext())
            image.layout.attention = .causal
            let segments = try Idefics3LanguageParityTests.segments(run, marker: Self.reference.marker, image: image, model: model)
            return try greedyDecode(model, segments: segments, count: run.greedy_ids.count, capacity: 512).tokens != run.greedy_ids
        }
        #expect(!departures.isEmpty)
    }

    @Test func rejectsBadFiles() {
        #expect(loadError { try Gemma3Projector(url: Self.directory.appendingPathComponent("bad-missing-projection.gguf")) }
            .contains("'mm.input_projection.weight': missing"))
        #expect(loadError { try Gemma3Projector(url: Idefics3Reference.mmproj) }.contains("projector type 'idefics3' is not 'gemma3'"))
    }
}
