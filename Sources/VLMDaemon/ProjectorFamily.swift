import Foundation
import VLMReasoning
import VLMWire

/// LLaVA-1.5-style vision towers + projectors in llama.cpp's mmproj GGUF layout: the seeing half of
/// visual reasoning's LLaVA path (`generate-with-visual-selection {mmproj}`), which the language
/// model family serves.
struct ProjectorFamily: ModelFamily {
    static let kind = "mmproj"

    func load(_ request: ModelLoadArguments) throws -> LoadedProjector {
        try LoadedProjector(id: request.id, file: request.file)
    }
}

/// A resident LLaVA vision tower + projector (llama.cpp's mmproj GGUF).
final class LoadedProjector: ResidentModel {
    let id: String
    let path: String
    let tower: LLaVAVisionTower
    let bytes: Int

    init(id: String, file: URL) throws {
        self.id = id
        path = file.path
        tower = try LLaVAVisionTower(url: file)
        bytes = fileBytes(file)
    }

    var info: ModelInfo {
        let hp = tower.hyperparameters
        return ModelInfo(id: id, kind: ProjectorFamily.kind, path: path, memoryBytes: bytes, details: [
            "imageTokens": .int(Int64(tower.tokenCount)), "outputWidth": .int(Int64(tower.outputWidth)),
            "imageSize": .int(Int64(hp.imageSize)), "patchSize": .int(Int64(hp.patchSize)),
        ])
    }
}
