import Foundation
import Testing
import VLMCLIP
import VLMImage
import VLMTensor
@testable import VLMReasoning

@Suite struct CLIPFrontEndTests {
    /// Preparing an image takes its global embedding and dense features from one pass of the ViT tower
    /// (the tower checks cancellation once per block, so the checks count its passes), and they are
    /// what the separate calls give.
    @Test func prepareRunsTheViTTowerOncePerImage() throws {
        let clip = try CLIPModel(directory: TestPaths.clip("vit-tiny"))  // its own, so the pass count is this test's
        guard case let .visionTransformer(layers, _) = clip.config.vision.tower else { Issue.record("not a ViT"); return }
        let preprocessing = Models.preprocessing(for: clip)
        let frontEnd = try CLIPFrontEnd(clip: clip, tokenizer: Models.clipTokenizer, preprocessing: preprocessing,
                                        configuration: smallConfiguration())
        let image = Models.image("astronaut.png")
        let passesBefore = clip.imageTowerPasses
        let checks = CancellationToken()
        let prepared = try #require(try frontEnd.prepare(image, precomputed: nil, compute: ComputeContext(cancellation: checks))
            as? CLIPPreparedImage)
        #expect(checks.polls == layers)
        #expect(clip.imageTowerPasses - passesBefore == 1)

        let pixels = preprocessing(image)
        #expect(prepared.globalEmbedding == (try clip.encodeImages(pixels, count: 1))[0])
        let dense = try clip.encodeImageDense(pixels, count: 1)
        #expect(prepared.gridHeight == dense.gridHeight && prepared.gridWidth == dense.gridWidth)
        #expect(prepared.cells == dense.features[0].map(l2Normalized))
    }
}
