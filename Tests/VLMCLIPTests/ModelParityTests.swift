import Foundation
import Testing
import VLMTensor
@testable import VLMCLIP

/// CLIPModel against open_clip on the two tiny random-weight fixture models (ModifiedResNet with
/// F16/F32 weights and QuickGELU; ViT with F32/BF16 weights and exact GELU).
@Suite struct ModelParityTests {
    static let models = ["rn-tiny", "vit-tiny"]

    @Test(arguments: models) func imageEmbeddingsMatchOpenCLIP(name: String) throws {
        let model = try CLIPModel(directory: Fixtures.model(name))
        let reference = try ModelReference.load(name)
        let pixels = try Fixtures.floats(Fixtures.model(name).appendingPathComponent("pixels.f32"))
        var reported: [Int] = []
        let embeddings = try model.encodeImages(pixels, count: reference.image_shape[0], progress: { done, _ in reported.append(done) })
        #expect(reported.last == reference.image_shape[0])
        for (ours, theirs) in zip(embeddings, reference.image_embeddings) {
            #expect(cosine(ours, theirs) > 0.99999)
        }
    }

    @Test(arguments: models) func textEmbeddingsAndLogitsMatchOpenCLIP(name: String) throws {
        let model = try CLIPModel(directory: Fixtures.model(name))
        let reference = try ModelReference.load(name)
        let pixels = try Fixtures.floats(Fixtures.model(name).appendingPathComponent("pixels.f32"))
        let text = try model.encodeText(reference.tokens)
        for (ours, theirs) in zip(text, reference.text_embeddings) {
            #expect(cosine(ours, theirs) > 0.99999)
        }
        #expect(abs(model.logitScale - reference.logit_scale) < 1e-3)
        let logits = model.logits(images: try model.encodeImages(pixels, count: reference.image_shape[0]), texts: text)
        #expect(maxAbsDifference(logits.flatMap { $0 }, reference.logits.flatMap { $0 }) < 1e-3)
    }

    @Test(arguments: models) func tokenizerReproducesFixtureTokens(name: String) throws {
        let reference = try ModelReference.load(name)
        let tokenizer = try CLIPTokenizer()
        #expect(reference.texts.map { tokenizer.tokenize($0) } == reference.tokens)
    }

    @Test(arguments: models) func denseFeaturesMatchReference(name: String) throws {
        let model = try CLIPModel(directory: Fixtures.model(name))
        let reference = try ModelReference.load(name)
        let pixels = try Fixtures.floats(Fixtures.model(name).appendingPathComponent("pixels.f32"))
        let dense = try model.encodeImageDense(pixels, count: reference.image_shape[0])
        #expect([dense.gridHeight, dense.gridWidth] == reference.dense_grid)
        for (ours, theirs) in zip(dense.features, reference.dense_features) {
            #expect(ours.count == theirs.count)
            for (a, b) in zip(ours, theirs) { #expect(cosine(a, b) > 0.99999) }
        }
    }

    /// Embeddings and dense features together match open_clip, from one pass of the tower per chunk.
    @Test(arguments: models) func embeddingsWithDenseMatchOpenCLIP(name: String) throws {
        let model = try CLIPModel(directory: Fixtures.model(name))
        let reference = try ModelReference.load(name)
        let pixels = try Fixtures.floats(Fixtures.model(name).appendingPathComponent("pixels.f32"))
        let count = reference.image_shape[0]
        let both = try model.encodeImagesWithDense(pixels, count: count)
        for (ours, theirs) in zip(both.embeddings, reference.image_embeddings) { #expect(cosine(ours, theirs) > 0.99999) }
        #expect([both.dense.gridHeight, both.dense.gridWidth] == reference.dense_grid)
        for (ours, theirs) in zip(both.dense.features, reference.dense_features) {
            #expect(ours.count == theirs.count)
            for (a, b) in zip(ours, theirs) { #expect(cosine(a, b) > 0.99999) }
        }
        let chunks = (count + CLIPModel.imageChunk - 1) / CLIPModel.imageChunk
        #expect(model.imageTowerPasses == chunks)
    }

    /// Both towers check cancellation once per block (transformer block or bottleneck), so the checks
    /// count the passes: one per image for embeddings and dense features together.
    @Test(arguments: models) func embeddingsWithDenseRunTheTowerOnce(name: String) throws {
        let model = try CLIPModel(directory: Fixtures.model(name))
        let blocks = switch model.config.vision.tower {
        case let .visionTransformer(layers, _): layers
        case let .modifiedResNet(stageBlocks): stageBlocks.reduce(0, +)
        }
        let size = model.config.vision.imageSize
        let checks = CancellationToken()
        _ = try model.encodeImagesWithDense([Float](repeating: 0.1, count: 3 * size * size), count: 1,
                                            compute: ComputeContext(cancellation: checks))
        #expect(checks.polls == blocks)
        #expect(model.imageTowerPasses == 1)
    }

    /// Batching and the text truncation are exact: one row alone gives the same embedding as in a batch.
    @Test func textRowAloneMatchesRowInBatch() throws {
        let model = try CLIPModel(directory: Fixtures.model("rn-tiny"))
        let reference = try ModelReference.load("rn-tiny")
        let batch = try model.encodeText(reference.tokens)
        for (index, row) in reference.tokens.enumerated() {
            let alone = try model.encodeText([row])[0]
            #expect(maxAbsDifference(alone, batch[index]) < 1e-5)
        }
    }

    @Test func zeroShotClassifierMatchesOpenCLIP() throws {
        let model = try CLIPModel(directory: Fixtures.model("rn-tiny"))
        let reference = try ModelReference.load("rn-tiny")
        let classifier = try ZeroShotClassifier(
            model: model, tokenizer: try CLIPTokenizer(), classNames: reference.classifier_classnames,
            templates: PromptTemplates.cifar)
        for (ours, theirs) in zip(classifier.weights, reference.classifier) {
            #expect(cosine(ours, theirs) > 0.99999)
        }
    }

    @Test func rejectsWrongPixelCountAndBadTokens() throws {
        let model = try CLIPModel(directory: Fixtures.model("vit-tiny"))
        #expect(throws: CLIPError.self) { try model.encodeImages([0, 1, 2], count: 1) }
        #expect(throws: CLIPError.self) { try model.encodeText([[49406, 60000, 49407]]) }
        #expect(throws: CLIPError.self) { try model.encodeText([[Int32](repeating: 1, count: 78)]) }
        let cancelled = CancellationToken()
        cancelled.cancel()
        #expect(throws: ComputeCancelled.self) {
            try model.encodeImages([Float](repeating: 0, count: 3 * 32 * 32), count: 1, compute: ComputeContext(cancellation: cancelled))
        }
        #expect(throws: ComputeCancelled.self) { try model.encodeText([[49406, 320, 49407]], compute: ComputeContext(cancellation: cancelled)) }
    }
}

/// The same parity checks on a full-size architecture (e.g. RN50, ViT-B-32 with random weights),
/// which is too large to commit. Generate it with
///     /work/refvenv/bin/python scripts/fixtures/make_clip_fixtures.py --full /tmp/clip-rn50 --arch RN50
/// and run with VLMD_CLIP_FULL_FIXTURE=/tmp/clip-rn50 swift test --filter FullSizeParity.
@Suite struct FullSizeParityTests {
    static let directory = ProcessInfo.processInfo.environment["VLMD_CLIP_FULL_FIXTURE"].map { URL(fileURLWithPath: $0) }

    @Test(.enabled(if: directory != nil, "set VLMD_CLIP_FULL_FIXTURE to a --full fixture directory"))
    func fullSizeModelMatchesOpenCLIP() throws {
        let directory = Self.directory!
        let model = try CLIPModel(directory: directory)
        let reference = try JSONDecoder().decode(ModelReference.self, from: Data(contentsOf: directory.appendingPathComponent("reference.json")))
        let pixels = try Fixtures.floats(directory.appendingPathComponent("pixels.f32"))
        let images = try model.encodeImages(pixels, count: reference.image_shape[0])
        let texts = try model.encodeText(reference.tokens)
        let imageCosines = zip(images, reference.image_embeddings).map { cosine($0, $1) }
        let textCosines = zip(texts, reference.text_embeddings).map { cosine($0, $1) }
        let logitError = maxAbsDifference(model.logits(images: images, texts: texts).flatMap { $0 }, reference.logits.flatMap { $0 })
        let dense = try model.encodeImageDense(pixels, count: reference.image_shape[0])
        let denseCosine = zip(dense.features.flatMap { $0 }, reference.dense_features.flatMap { $0 }).map { cosine($0, $1) }.min() ?? 0
        print("full-size parity: min image cos \(imageCosines.min()!), min text cos \(textCosines.min()!), max logit error \(logitError), min dense cos \(denseCosine)")
        #expect(imageCosines.allSatisfy { $0 > 0.99999 })
        #expect(textCosines.allSatisfy { $0 > 0.99999 })
        #expect(logitError < 1e-3)
        #expect(denseCosine > 0.99999)
    }
}
