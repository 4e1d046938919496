import Foundation
import Testing
import VLMImage
import VLMLanguage
@testable import VLMReasoning
import VLMTensor

/// llama.cpp's multimodal path on a random-initialised mmproj (scripts/fixtures/make_llava_fixtures.py).
struct LLaVAReference: Decodable {
    struct Encoding: Decodable { let image: String; let size: [Int]; let tokens: Int; let embeddings: [Float] }
    enum Chunk: Decodable {
        case text([Int32]), image(Int)
        enum Keys: String, CodingKey { case text, image }
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: Keys.self)
            if let t = try c.decodeIfPresent([Int32].self, forKey: .text) { self = .text(t) } else { self = .image(try c.decode(Int.self, forKey: .image)) }
        }
    }
    struct Run: Decodable {
        let prompt: String; let image: String; let chunks: [Chunk]; let positions: Int
        let greedy_ids: [Int32]; let greedy_text: String
    }
    let marker: String
    let encodings: [Encoding]
    let greedy: [Run]

    static let directory = TestPaths.fixtures.appendingPathComponent("llava")
    static let mmproj = directory.appendingPathComponent("tiny-mmproj.gguf")
    static let load: LLaVAReference = try! JSONDecoder().decode(
        LLaVAReference.self, from: Data(contentsOf: directory.appendingPathComponent("reference.json")))
}

enum LLaVAModels {
    static let tower = try! LLaVAVisionTower(url: LLaVAReference.mmproj)
    static func image(_ name: String) throws -> RGBImage {
        try PNGDecoder().decode(contentsOf: TestPaths.images.appendingPathComponent(name).path)
    }
}

@Suite struct LLaVATowerTests {
    /// A cancelled token stops the tower between blocks with the one cancellation error.
    @Test func aCancelledTokenStopsTheTower() throws {
        let image = try LLaVAModels.image(LLaVAReference.load.encodings[0].image)
        let firstBlock = CancellationToken(cancellingAtPoll: 1)
        #expect(throws: ComputeCancelled.self) { try LLaVAModels.tower.encode(image, compute: ComputeContext(cancellation: firstBlock)) }
        #expect(firstBlock.polls == 1)
        let counted = CancellationToken()
        _ = try LLaVAModels.tower.encode(image, compute: ComputeContext(cancellation: counted))
        #expect(counted.polls == LLaVAModels.tower.hyperparameters.blocksRun)
    }

    @Test func readsTheHeader() throws {
        let hp = LLaVAModels.tower.hyperparameters
        #expect(hp.imageSize == 32 && hp.patchSize == 8 && hp.width == 48 && hp.headCount == 4)
        #expect(hp.blockCount == 3 && hp.blocksRun == 2 && hp.projectionWidth == 64 && hp.useGELU)
        #expect(LLaVAModels.tower.tokenCount == 16)
        try LLaVAModels.tower.checkCompatible(languageModelWidth: 64)
        #expect(throws: MMProjError.widthMismatch(projector: 64, languageModel: 576)) {
            try LLaVAModels.tower.checkCompatible(languageModelWidth: 576)
        }
    }

    /// Square and non-square (pad-to-square) images, grayscale converted to RGB: llama.cpp's embeddings.
    @Test func embeddingsMatchLlamaCpp() throws {
        for reference in LLaVAReference.load.encodings {
            let image = try LLaVAModels.image(reference.image)
            let ours = try LLaVAModels.tower.encode(image)
            #expect(ours.count == reference.embeddings.count)
            var maxError: Float = 0, dotProduct: Float = 0, a: Float = 0, b: Float = 0
            for (x, y) in zip(ours, reference.embeddings) {
                maxError = max(maxError, abs(x - y)); dotProduct += x * y; a += x * x; b += y * y
            }
            let cosine = dotProduct / (a * b).squareRoot()
            print("LLaVA tower \(reference.image): max |error| \(maxError), cosine \(cosine)")
            // llama.cpp runs the tower's attention in fp16 (flash attention) and GELU through an fp16 table.
            #expect(maxError < 1e-2, "\(reference.image)")
            #expect(cosine > 0.99999, "\(reference.image)")
        }
    }

    @Test func preprocessingPlacesTheImageLikeLlamaCpp() {
        let p = LLaVAPreprocessing(LLaVAModels.tower.hyperparameters)
        // chelsea.png is 451x300: scale 32/451, height ceil(21.28) = 22, centred at y = 5.
        #expect(p.placement(width: 451, height: 300) == (0, 5, 32, 22))
        #expect(p.placement(width: 512, height: 512) == (0, 0, 32, 32))
    }

    @Test func rejectsBadFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("llava-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // The language model is a GGUF without a vision tower.
        #expect(throws: MMProjError.self) { _ = try LLaVAVisionTower(url: TestPaths.stories) }
        // A truncated mmproj: the GGUF reader names the failure.
        let bytes = try Data(contentsOf: LLaVAReference.mmproj)
        let truncated = directory.appendingPathComponent("truncated.gguf")
        try bytes.prefix(bytes.count / 2).write(to: truncated)
        #expect(throws: (any Error).self) { _ = try LLaVAVisionTower(url: truncated) }

        // One fault each (scripts/fixtures/make_llava_fixtures.py): the error names the key or tensor.
        func error(_ name: String) -> String {
            loadError { try LLaVAVisionTower(url: LLaVAReference.directory.appendingPathComponent(name)) }
        }
        #expect(error("bad-projector-type.gguf").contains("projector type 'ldp'"))
        #expect(error("bad-missing-tensor.gguf").contains("'v.blk.0.attn_k.weight': missing"))
        #expect(error("bad-patch-shape.gguf").contains("'v.patch_embd.weight': shape [2, 2, 3, 8]"))
        // A tiny tower that loads, but projects to 32 values: not for stories260K's 64-wide embeddings.
        let narrow = try LLaVAVisionTower(url: LLaVAReference.directory.appendingPathComponent("bad-width-32.gguf"))
        #expect(throws: MMProjError.widthMismatch(projector: 32, languageModel: 64)) {
            _ = try ProjectorFrontEnd(projector: narrow, languageModel: Models.stories)
        }
    }
}

@Suite struct LLaVALanguageParityTests {
    /// Text and image chunks as libmtmd tokenizes them, then greedy decoding on stories260K: the same
    /// token ids as llama.cpp's `mtmd_helper_eval_chunks` + `llama_decode`.
    @Test func greedyTokensMatchLlamaCpp() throws {
        let model = Models.stories
        let tower = LLaVAModels.tower
        try tower.checkCompatible(languageModelWidth: model.hyperparameters.embeddingLength)
        for run in LLaVAReference.load.greedy {
            let image = try tower.encode(LLaVAModels.image(run.image))
            let segments = try LLaVAPrompt.segments(run.prompt, images: [(image, tower.tokenCount)], model: model)
            #expect(segments.count == run.chunks.count)
            for (ours, theirs) in zip(segments, run.chunks) {
                switch (ours, theirs) {
                case let (.tokens(a), .text(b)): #expect(a == b, "\(run.prompt)")
                case let (.embeddings(_, count, _), .image(n)): #expect(count == n)
                default: Issue.record("chunk kinds differ for \(run.prompt)")
                }
            }
            let (positions, generated) = try greedyDecode(model, segments: segments, count: run.greedy_ids.count, capacity: 256)
            #expect(positions == run.positions)
            print("LLaVA greedy \(run.prompt): \(generated == run.greedy_ids ? "identical" : "DIFFERENT") (\(generated.count) tokens)")
            #expect(generated == run.greedy_ids, "\(run.prompt)")

            // The image matters: another image's tokens change the next-token distribution.
            let other = try tower.encode(LLaVAModels.image(run.image == "coins.png" ? "chelsea.png" : "coins.png"))
            var otherCache = model.transformer.makeCache(capacity: 256)
            let otherLogits = try model.prefill(
                segments: LLaVAPrompt.segments(run.prompt, images: [(other, tower.tokenCount)], model: model), cache: &otherCache)
            var firstCache = model.transformer.makeCache(capacity: 256)
            let firstLogits = try model.prefill(segments: segments, cache: &firstCache)
            #expect(zip(firstLogits, otherLogits).map { abs($0 - $1) }.max()! > 1e-3)
        }
    }

    /// Mean attention of new tokens to earlier positions: weights of a softmax row, so non-negative and
    /// summing to at most 1 (the rest goes to the new tokens themselves); bad layers or ranges throw.
    @Test func meanAttentionReadsSoftmaxWeights() throws {
        let model = Models.stories
        var cache = model.transformer.makeCache(capacity: 64)
        let image = try LLaVAModels.tower.encode(LLaVAModels.image("coins.png"))
        _ = try model.prefill(segments: [.tokens([1]), .embeddings(image, count: 16)], cache: &cache)
        let tokens = model.tokenizer.encode("a big cat", addSpecial: false)
        let all = try model.transformer.meanAttention(of: tokens, after: cache, layers: [0, 4], to: 0..<17)
        #expect(all.allSatisfy { $0 >= 0 && $0.isFinite })
        let total = all.reduce(0, +)
        #expect(total > 0 && total <= 1 + 1e-5)
        let imageOnly = try model.transformer.meanAttention(of: tokens, after: cache, layers: [0, 4], to: 1..<17)
        #expect(imageOnly == Array(all[1...]))
        #expect(cache.count == 17)  // the caller's cache is untouched
        #expect(throws: LanguageModelError.self) { _ = try model.transformer.meanAttention(of: tokens, after: cache, layers: [5], to: 0..<17) }
        #expect(throws: LanguageModelError.self) { _ = try model.transformer.meanAttention(of: tokens, after: cache, layers: [0], to: 0..<18) }
    }

    @Test func embeddingInputIsChecked() throws {
        let model = Models.stories
        var cache = model.transformer.makeCache(capacity: 8)
        #expect(throws: LanguageModelError.self) { _ = try model.transformer.forward(embeddings: [1, 2, 3], count: 1, cache: &cache) }
        #expect(throws: LanguageModelError.self) {
            _ = try model.transformer.forward(embeddings: [Float](repeating: 0, count: 64 * 9), count: 9, cache: &cache)
        }
        #expect(throws: LanguageModelError.self) {
            _ = try model.transformer.forward(embeddings: [Float](repeating: .nan, count: 64), count: 1, cache: &cache)
        }
        #expect(cache.count == 0)
    }
}
