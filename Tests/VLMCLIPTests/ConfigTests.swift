import Foundation
import Testing
import VLMTensor
@testable import VLMCLIP

/// open_clip_config.json parsing and the config ↔ checkpoint consistency checks.
@Suite struct ConfigTests {
    static func config(_ json: String) throws -> CLIPConfig { try CLIPConfig(jsonData: Data(json.utf8)) }

    @Test func parsesBothFixtureConfigs() throws {
        let rn = try CLIPConfig(contentsOf: Fixtures.model("rn-tiny").appendingPathComponent("open_clip_config.json"))
        #expect(rn.vision.tower == .modifiedResNet(stageBlocks: [1, 1, 1, 1]))
        #expect(rn.quickGELU && rn.embedDim == 32 && rn.vision.imageSize == 64)
        #expect(rn.preprocess.interpolation == "bicubic" && rn.preprocess.resizeMode == "shortest")
        let vit = try CLIPConfig(contentsOf: Fixtures.model("vit-tiny").appendingPathComponent("open_clip_config.json"))
        #expect(vit.vision.tower == .visionTransformer(layers: 2, patchSize: 8))
        #expect(!vit.quickGELU && vit.text.heads == 2 && vit.text.contextLength == 77)
    }

    @Test func defaultsFollowOpenCLIPDataclasses() throws {
        let c = try Self.config(#"{"model_cfg": {"embed_dim": 512, "vision_cfg": {"patch_size": 32}, "text_cfg": {}}}"#)
        #expect(c.vision.tower == .visionTransformer(layers: 12, patchSize: 32))
        #expect(c.vision.width == 768 && c.vision.imageSize == 224 && c.text.width == 512 && c.text.vocabSize == 49408)
        #expect(c.preprocess.mean == [0.48145466, 0.4578275, 0.40821073])
    }

    @Test(arguments: [
        #"{"model_cfg": {"embed_dim": 8, "vision_cfg": {"timm_model_name": "vit"}, "text_cfg": {}}}"#,
        #"{"model_cfg": {"embed_dim": 8, "vision_cfg": {}, "text_cfg": {"hf_model_name": "roberta"}}}"#,
        #"{"model_cfg": {"embed_dim": 8, "vision_cfg": {"image_size": [224, 160]}, "text_cfg": {}}}"#,
        #"{"model_cfg": {"embed_dim": 8, "vision_cfg": {}, "text_cfg": {"pool_type": "last"}}}"#,
    ]) func rejectsUnsupportedArchitectures(json: String) {
        #expect(throws: CLIPError.self) { try Self.config(json) }
    }

    @Test(arguments: [
        "not json", "{}", #"{"model_cfg": {"vision_cfg": {}, "text_cfg": {}}}"#,
        #"{"model_cfg": {"embed_dim": -4, "vision_cfg": {}, "text_cfg": {}}}"#,
        #"{"model_cfg": {"embed_dim": 8, "vision_cfg": {"layers": [3, 4, 6]}, "text_cfg": {}}}"#,
        #"{"model_cfg": {"embed_dim": 8, "vision_cfg": {"image_size": 100, "patch_size": 32}, "text_cfg": {}}}"#,
        #"{"model_cfg": {"embed_dim": 8, "vision_cfg": {}, "text_cfg": {"width": 10, "heads": 3}}}"#,
        #"{"model_cfg": {"embed_dim": 8, "vision_cfg": {"mlp_ratio": 1e300}, "text_cfg": {}}}"#,
        #"{"model_cfg": {"embed_dim": 99999999999, "vision_cfg": {}, "text_cfg": {}}}"#,
        #"{"model_cfg": {"embed_dim": 1e300, "vision_cfg": {}, "text_cfg": {}}}"#,
        #"{"model_cfg": {"embed_dim": 8, "vision_cfg": {"layers": [1e300, 1, 1, 1]}, "text_cfg": {}}}"#,
    ]) func rejectsMalformedConfigs(json: String) {
        #expect(throws: CLIPError.self) { try Self.config(json) }
    }

    /// A config that disagrees with the weights fails at load time, naming the tensor.
    @Test func checkpointShapesAreCheckedAgainstTheConfig() throws {
        let source = Fixtures.model("vit-tiny")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("clip-mismatch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: directory.appendingPathComponent(CLIPModel.weightsFileName),
                                                   withDestinationURL: source.appendingPathComponent(CLIPModel.weightsFileName))
        var json = try String(contentsOf: source.appendingPathComponent(CLIPModel.configFileName), encoding: .utf8)
        json = json.replacingOccurrences(of: "\"embed_dim\": 24", with: "\"embed_dim\": 16")
        try json.write(to: directory.appendingPathComponent(CLIPModel.configFileName), atomically: true, encoding: .utf8)
        #expect(throws: SafeTensorsError.shapeMismatch(name: "visual.proj", expected: [32, 16], found: [32, 24])) {
            try CLIPModel(directory: directory)
        }
        #expect(throws: CLIPError.self) { try CLIPModel(directory: directory.appendingPathComponent("missing")) }
    }
}
