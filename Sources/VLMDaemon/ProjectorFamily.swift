import Foundation
import VLMImage
import VLMReasoning
import VLMWire

/// Vision towers + projectors in llama.cpp's mmproj GGUF layout, of any type `MultimodalProjectors`
/// loads: what turns an image into language-model context for multimodal `generate` and for visual
/// reasoning's projector path.
struct ProjectorFamily: ModelFamily {
    static let kind = "mmproj"

    /// The most image tokens `imageMinTokens` / `imageMaxTokens` may ask for.
    static let tokenLimitRange = 1...65536

    func validate(_ request: ModelLoadArguments) throws {
        _ = try Self.tokenLimits(request.params)
    }

    func load(_ request: ModelLoadArguments) throws -> LoadedProjector {
        try LoadedProjector(id: request.id, file: request.file, tokenLimits: Self.tokenLimits(request.params))
    }

    /// A resident dynamic-resolution projector answers a load only when it has the image token limits the
    /// load asks for, the defaults when it names none (`vlm generate --mmproj X` means the defaults, whatever
    /// an earlier command asked for); a fixed-size one answers the loads that name none.
    func satisfies(_ params: ModelsLoadParams, resident: ModelInfo) -> Bool {
        let named = try? Self.tokenLimits(params)
        guard let low = resident.details?["imageMinTokens"]?.intValue, let high = resident.details?["imageMaxTokens"]?.intValue,
              low <= high else { return named == nil }
        return Int(low)...Int(high) == named ?? Qwen2VLProjector.defaultTokenLimits
    }

    /// The file's name, then `@MIN-MAX` when the load names image token limits other than the defaults: on a
    /// shared daemon each range the commands ask for is a copy of its own, beside the default one.
    func defaultId(_ params: ModelsLoadParams, file: URL) -> String {
        let name = file.lastPathComponent
        guard let limits = try? Self.tokenLimits(params), limits != Qwen2VLProjector.defaultTokenLimits else { return name }
        return "\(name)@\(limits.lowerBound)-\(limits.upperBound)"
    }

    /// The image token range a load asks for (nil: the projector's default), the unnamed bound taken from
    /// the default range unless that would cross the named one.
    static func tokenLimits(_ params: ModelsLoadParams) throws -> ClosedRange<Int>? {
        let (low, high) = (params.imageMinTokens, params.imageMaxTokens)
        for (name, value) in [("imageMinTokens", low), ("imageMaxTokens", high)] {
            if let value, !tokenLimitRange.contains(value) {
                throw RPCError.invalidParams("params.\(name): expected an integer in \(tokenLimitRange.lowerBound)...\(tokenLimitRange.upperBound), got \(value)")
            }
        }
        if low == nil, high == nil { return nil }
        let defaults = Qwen2VLProjector.defaultTokenLimits
        let lower = low ?? min(defaults.lowerBound, high!), upper = high ?? max(defaults.upperBound, low!)
        guard lower <= upper else {
            throw RPCError.invalidParams("params.imageMinTokens: \(lower) is more than imageMaxTokens \(upper)")
        }
        return lower...upper
    }

    func unloaded(id: String, services: Services) { services.projectorImages.forget(projector: id) }
}

/// A resident projector (llama.cpp's mmproj GGUF).
final class LoadedProjector: ResidentModel {
    let id: String
    let path: String
    let projector: any MultimodalProjector
    let bytes: Int

    init(id: String, file: URL, tokenLimits: ClosedRange<Int>? = nil) throws {
        self.id = id
        path = file.path
        projector = try MultimodalProjectors.load(url: file, tokenLimits: tokenLimits)
        if tokenLimits != nil, !(projector is Qwen2VLProjector) {
            throw RPCError.invalidParams("params.imageMaxTokens: projector type '\(projector.projectorType)' makes every image the same "
                                         + "tokens; image token limits apply to \(Qwen2VLProjector.fileTypes.joined(separator: " and "))")
        }
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
        if let qwen = projector as? Qwen2VLProjector {
            details["imageMinTokens"] = .int(Int64(qwen.tokenLimits.lowerBound))
            details["imageMaxTokens"] = .int(Int64(qwen.tokenLimits.upperBound))
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
