import Foundation
import Testing
import VLMImage
import VLMTensor
import VLMWire
@testable import VLMDaemon

/// `encode-image` with `dense: true` takes embeddings and dense features from one tower pass.
@Suite struct CLIPDensePassTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func input(_ name: String) throws -> ImageInput {
        let path = Self.root.deletingLastPathComponent().appendingPathComponent("shared/data/images/\(name)").path
        return try JSONDecoder().decode(ImageInput.self, from: JSONEncoder().encode(["path": path]))
    }

    func encode(_ sources: [ImageSource], runtime: CLIPRuntime, clip: LoadedCLIP, dense: Bool) throws -> [EncodedImage] {
        let staged = try runtime.stageBatch(sources[...], with: clip, dense: dense, decoder: PNGDecoder(), compute: ComputeContext())
        return try runtime.encodeBatch(staged, with: clip, dense: dense, compute: ComputeContext())
    }

    @Test func denseEncodingRunsTheViTTowerOncePerBatch() throws {
        let clip = try LoadedCLIP(id: "vit", directory: Self.root.appendingPathComponent("Tests/VLMCLIPTests/Fixtures/vit-tiny"))
        let runtime = CLIPRuntime(imageCacheBytes: 1 << 20, textCacheBytes: 1 << 20)
        let sources = try imageSources([input("astronaut.png"), input("coins.png")])
        let dense = try encode(sources, runtime: runtime, clip: clip, dense: true)
        #expect(clip.model.imageTowerPasses == 1)
        #expect(dense.map(\.cached) == [false, false])
        #expect(dense.allSatisfy { $0.dense.map { $0.features.count == $0.gridHeight * $0.gridWidth && $0.gridHeight == 4 } == true })

        // The embeddings are the pooled-only path's, and were cached: a second dense request reports them
        // cached and again runs one pass (dense features are not cached).
        let plain = try encode(sources, runtime: runtime, clip: clip, dense: false)
        #expect(plain.map(\.embedding) == dense.map(\.embedding))
        #expect(plain.map(\.cached) == [true, true])
        let again = try encode(sources, runtime: runtime, clip: clip, dense: true)
        #expect(again.map(\.cached) == [true, true])
        #expect(again.map { $0.dense?.features } == dense.map { $0.dense?.features })
        #expect(clip.model.imageTowerPasses == 2)
    }

    /// generate-with-visual-selection's CLIP features (global + dense) come from one pass, then from its cache.
    @Test func reasoningFeaturesRunTheViTTowerOnce() throws {
        let clip = try LoadedCLIP(id: "vit", directory: Self.root.appendingPathComponent("Tests/VLMCLIPTests/Fixtures/vit-tiny"))
        let runtime = CLIPRuntime(imageCacheBytes: 1 << 20, textCacheBytes: 1 << 20)
        let path = Self.root.deletingLastPathComponent().appendingPathComponent("shared/data/images/astronaut.png").path
        let image = try PNGDecoder().decode(contentsOf: path)
        let features = try runtime.reasoningFeatures(of: image, imageId: CLIPRuntime.imageId(for: image), clip: clip,
                                                     compute: ComputeContext())
        #expect(features.globalEmbedding != nil && features.dense != nil)
        #expect(clip.model.imageTowerPasses == 1)
        _ = try runtime.reasoningFeatures(of: image, imageId: CLIPRuntime.imageId(for: image), clip: clip, compute: ComputeContext())
        #expect(clip.model.imageTowerPasses == 1)
    }
}
