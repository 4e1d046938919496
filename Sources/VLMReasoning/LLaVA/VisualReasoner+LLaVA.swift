// Loading the projector path of the reasoning engine: a projector file and a GGUF language model.
import Foundation
import VLMLanguage

extension VisualReasoner {
    /// Loads `languageModelPath` and the projector `mmproj` (llama.cpp's `clip.*` layout, any type
    /// `MultimodalProjectors` loads) whose output width must equal the model's embedding width. The
    /// image's chunks go into the context; attribution is the model's attention to its image tokens
    /// (`attentionLayers`, default the last third).
    public static func load(mmproj: URL, languageModelPath: URL, configuration: ReasoningConfiguration = ReasoningConfiguration(),
                            attentionLayers: [Int]? = nil, contextLength: Int? = nil) throws -> VisualReasoner {
        try configuration.validate()
        for file in [mmproj, languageModelPath] where !FileManager.default.fileExists(atPath: file.path) {
            throw ReasoningError.missingModel(file.path)
        }
        let languageModel = try LanguageModel(path: languageModelPath, contextLength: contextLength)
        let frontEnd = try ProjectorFrontEnd(mmproj: mmproj, languageModel: languageModel, attentionLayers: attentionLayers)
        return try VisualReasoner(frontEnd: frontEnd, languageModel: languageModel, configuration: configuration)
    }
}
