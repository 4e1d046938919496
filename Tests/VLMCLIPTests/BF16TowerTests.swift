import Foundation
import Testing
import VLMTensor
@testable import VLMCLIP

/// `precision: .bf16` image towers against open_clip's float32 outputs on the fixture models: close
/// (the goal is a cosine of 0.999 to fp32) but not the fp32 path itself.
@Suite struct BF16TowerTests {
    @Test(.enabled(if: BF16.isSupported, "needs AVX-512 BF16"), arguments: ModelParityTests.models)
    func bf16EmbeddingsAndDenseFeaturesStayCloseToOpenCLIP(name: String) throws {
        let model = try CLIPModel(directory: Fixtures.model(name))
        let reference = try ModelReference.load(name)
        let pixels = try Fixtures.floats(Fixtures.model(name).appendingPathComponent("pixels.f32"))
        let count = reference.image_shape[0]
        let fp32Bytes = model.memoryBytes
        let bf16 = try model.encodeImagesWithDense(pixels, count: count, precision: .bf16)
        #expect(model.memoryBytes > fp32Bytes, "the bf16 tower, once built, is counted in memoryBytes")
        let fp32 = try model.encodeImages(pixels, count: count)
        for ((ours, theirs), exact) in zip(zip(bf16.embeddings, reference.image_embeddings), fp32) {
            #expect(cosine(ours, theirs) > 0.999)
            #expect(ours != exact, "bf16 must not be the fp32 path")
        }
        for (ours, theirs) in zip(bf16.dense.features, reference.dense_features) {
            for (a, b) in zip(ours, theirs) { #expect(cosine(a, b) > 0.999) }
        }
        // The bf16 tower is built once and reused.
        let again = try model.encodeImages(pixels, count: count, precision: .bf16)
        #expect(again == bf16.embeddings)
    }

    @Test(.enabled(if: !BF16.isSupported, "only on CPUs without AVX-512 BF16"))
    func bf16IsRefusedWithoutTheInstructions() throws {
        let model = try CLIPModel(directory: Fixtures.model("rn-tiny"))
        let size = model.config.vision.imageSize
        #expect(throws: CLIPError.self) { try model.encodeImages([Float](repeating: 0, count: 3 * size * size), count: 1, precision: .bf16) }
    }
}
