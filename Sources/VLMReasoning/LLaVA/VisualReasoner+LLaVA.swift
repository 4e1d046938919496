// Loading the LLaVA-style path of the reasoning engine: a projector file and a GGUF language model.
import Foundation
import VLMLanguage

extension VisualReasoner {
    /// Loads `languageModelPath` and the LLaVA projector `mmproj` (llama.cpp's `clip.*` layout, "mlp"
    /// projector) whose output width must equal the model's embedding width. Image tokens go into the
    /// context; attribution is the model's attention to them (`attentionLayers`, default the last third).
    public static func load(mmproj: URL, languageModelPath: URL, configuration: ReasoningConfiguration = ReasoningConfiguration(),
                            attentionLayers: [Int]? = nil, contextLength: Int? = nil) throws -> VisualReasoner {
        try configuration.validate()
        for file in [mmproj, languageModelPath] where !FileManager.default.fileExists(atPath: file.path) {
            throw ReasoningError.missingModel(file.path)
        }
        let languageModel = try LanguageModel(path: languageModelPath, contextLength: contextLength)
        let frontEnd = try LLaVAFrontEnd(mmproj: mmproj, languageModel: languageModel, attentionLayers: attentionLayers)
        return try VisualReasoner(frontEnd: frontEnd, languageModel: languageModel, configuration: configuration)
    }
}
