import Foundation
import VLMCLIP
import VLMImage
import VLMWire

/// open_clip model directories (`open_clip_config.json` + `open_clip_model.safetensors`): image and
/// text embeddings, zero-shot classification, attribution and prompt learning.
struct CLIPFamily: ModelFamily {
    static let kind = "clip"

    func memoryEstimate(_ request: ModelLoadArguments) -> Int {
        fileBytes(request.file.appendingPathComponent("open_clip_model.safetensors"))
    }

    func load(_ request: ModelLoadArguments) throws -> LoadedCLIP {
        try LoadedCLIP(id: request.id, directory: request.file)
    }

    /// Embeddings cached for the model would never be asked for again.
    func unloaded(id: String, services: Services) { services.clip.forget(model: id) }

    func registerHandlers(_ table: inout HandlerTable, services: Services) {
        registerCLIPHandlers(&table, services: services)
        registerTextAndAttributionHandlers(&table, services: services)
        registerPromptHandlers(&table, services: services)
        registerSelectorHandlers(&table, services: services)
    }
}

extension Services {
    /// The CLIP model a request names, or the only one loaded.
    func clipModel(_ id: String?) async throws -> LoadedCLIP {
        try await model(id, of: CLIPFamily.self)
    }
}

/// A resident CLIP model with the preprocessing its config prescribes.
final class LoadedCLIP: ResidentModel {
    let id: String
    let path: String
    let model: CLIPModel
    let preprocessing: CLIPPreprocessing

    init(id: String, directory: URL) throws {
        self.id = id
        self.path = directory.path
        model = try CLIPModel(directory: directory)
        preprocessing = try model.imagePreprocessing()
    }

    var info: ModelInfo {
        let c = model.config
        let tower: String = switch c.vision.tower {
        case .modifiedResNet: "ModifiedResNet"
        case .visionTransformer: "VisionTransformer"
        }
        return ModelInfo(id: id, kind: CLIPFamily.kind, path: path, memoryBytes: model.memoryBytes, details: [
            "imageTower": .string(tower), "imageSize": .int(Int64(c.vision.imageSize)),
            "embedDim": .int(Int64(c.embedDim)), "contextLength": .int(Int64(c.text.contextLength)),
        ])
    }
}
