import Foundation
import VLMLanguage
import VLMWire

/// GGUF language models (llama, gemma3... see VLMLanguage): generation, tokenisation, scoring, and the
/// reasoning of visual reasoning.
struct LanguageModelFamily: ModelFamily {
    static let kind = "gguf"

    func validate(_ request: ModelLoadArguments) throws {
        if let n = request.params.contextLength, !(1...1_048_576).contains(n) {
            throw RPCError.invalidParams("params.contextLength: expected an integer in 1...1048576")
        }
    }

    func load(_ request: ModelLoadArguments) throws -> LoadedLanguageModel {
        try LoadedLanguageModel(id: request.id, file: request.file, contextLength: request.params.contextLength)
    }

    /// A resident model answers a load that asks for a context length only when it has that length.
    func satisfies(_ params: ModelsLoadParams, resident: ModelInfo) -> Bool {
        guard let wanted = params.contextLength else { return true }
        return resident.details?["contextLength"]?.intValue == Int64(wanted)
    }

    /// The file's name, then `@ctxN` when the load names a context length: on a shared daemon two commands
    /// asking for different lengths each get a copy of their own instead of the second failing on the id.
    func defaultId(_ params: ModelsLoadParams, file: URL) -> String {
        let name = file.lastPathComponent
        guard let length = params.contextLength else { return name }
        return "\(name)@ctx\(length)"
    }

    func registerHandlers(_ table: inout HandlerTable, services: Services) {
        registerLanguageHandlers(&table, services: services)
        registerVisualReasoningHandlers(&table, services: services)
    }
}

extension Services {
    /// The language model a request names, or the only one loaded.
    func languageModel(_ id: String?) async throws -> LoadedLanguageModel {
        try await model(id, of: LanguageModelFamily.self)
    }
}

/// A resident GGUF language model.
final class LoadedLanguageModel: ResidentModel {
    let id: String
    let path: String
    let model: LanguageModel

    init(id: String, file: URL, contextLength: Int?) throws {
        self.id = id
        self.path = file.path
        model = try LanguageModel(path: file, contextLength: contextLength)
    }

    var info: ModelInfo {
        let d = model.description
        return ModelInfo(id: id, kind: LanguageModelFamily.kind, path: path, memoryBytes: model.memoryBytes, details: [
            "name": .string(d.name), "architecture": .string(d.architecture),
            "parameters": .int(Int64(d.parameterCount)), "contextLength": .int(Int64(d.contextLength)),
            "trainedContextLength": .int(Int64(d.trainedContextLength)), "vocabularySize": .int(Int64(d.vocabularySize)),
            "quantization": .string(d.quantization), "tokenizer": .string(d.tokenizer),
            "chatTemplate": model.chatTemplate.map { .string($0.format.rawValue) } ?? .null,
            "chatTemplateSource": .string(model.chatTemplateSource),
        ])
    }
}
