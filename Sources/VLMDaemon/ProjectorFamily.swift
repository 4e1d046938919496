import Foundation
import VLMImage
import VLMReasoning
import VLMWire

/// Vision towers + projectors in llama.cpp's mmproj GGUF layout, of any type `MultimodalProjectors`
/// loads: what turns an image into language-model context for multimodal `generate` and for visual
/// reasoning's projector path.
struct ProjectorFamily: ModelFamily {
    static let kind = "mmproj"

    func load(_ request: ModelLoadArguments) throws -> LoadedProjector {
        try LoadedProjector(id: request.id, file: request.file)
    }

    func unloaded(id: String, services: Services) { services.projectorImages.forget(projector: id) }
}

/// A resident projector (llama.cpp's mmproj GGUF).
final class LoadedProjector: ResidentModel {
    let id: String
    let path: String
    let projector: any MultimodalProjector
    let bytes: Int

    init(id: String, file: URL) throws {
        self.id = id
        path = file.path
        projector = try MultimodalProjectors.load(url: file)
        bytes = fileBytes(file)
    }

    var info: ModelInfo {
        var details: [String: JSONValue] = [
            "projectorType": .string(projector.projectorType), "outputWidth": .int(Int64(projector.outputWidth)),
        ]
        if let tower = projector as? LLaVAVisionTower {
            let hp = tower.hyperparameters
            details["imageTokens"] = .int(Int64(tower.tokenCount))
            details["imageSize"] = .int(Int64(hp.imageSize))
            details["patchSize"] = .int(Int64(hp.patchSize))
        }
        return ModelInfo(id: id, kind: ProjectorFamily.kind, path: path, memoryBytes: bytes, details: .object(details))
    }
}

/// Image tokens a projector made (with each token's pixels, for attribution), cached by the image's pixels
/// (its content id) and the projector, so a second question about the same picture encodes nothing.
final class ProjectorImageCache: Sendable {
    struct Key: Hashable, Sendable { let projector: String; let imageId: String }
    let cache: LRUCache<Key, LocatedImageTokens>

    init(budgetBytes: Int) { cache = LRUCache(name: "projector-image-tokens", budgetBytes: budgetBytes) }

    func tokens(of imageId: String, projector: String) -> LocatedImageTokens? { cache.value(for: Key(projector: projector, imageId: imageId)) }

    func insert(_ tokens: LocatedImageTokens, of imageId: String, projector: String) {
        let floats = tokens.tokens.chunks.reduce(0) { total, chunk in
            if case let .embeddings(values, _) = chunk { return total + values.count }
            return total
        }
        cache.insert(tokens, for: Key(projector: projector, imageId: imageId), cost: floats * MemoryLayout<Float>.size)
    }

    func forget(projector id: String) { cache.removeAll { $0.projector == id } }
}
