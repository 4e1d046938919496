import Foundation
import VLMWire

/// A family of models the daemon can keep resident: how it is named, estimated, loaded, unloaded
/// and served. `models/load`, `models/unload` and `initialize`'s `modelKinds` know families only
/// through this protocol, so a new family (SigLIP, Qwen2-VL...) is one file conforming to it plus its
/// line in `ModelFamilies.registered`.
protocol ModelFamily: Sendable {
    /// What a loaded model of this family is kept as; its `info` is the family's `models/list` entry.
    associatedtype Model: ResidentModel

    /// The `kind` clients give to `models/load` and see in `models/list`.
    static var kind: String { get }

    /// Refuses the family's own bad load params (-32602 naming the field) before anything is
    /// reserved or read.
    func validate(_ request: ModelLoadArguments) throws

    /// Bytes set aside under the memory budget before the file is read; the loaded model's own
    /// count replaces it.
    func memoryEstimate(_ request: ModelLoadArguments) -> Int

    /// Reads the model. Runs on a compute thread; errors become -32003 naming the file.
    func load(_ request: ModelLoadArguments) throws -> Model

    /// Whether `resident`, loaded from the same file under this kind, already answers `params`
    /// (so `models/load` returns it marked `alreadyLoaded` instead of loading a copy).
    func satisfies(_ params: ModelsLoadParams, resident: ModelInfo) -> Bool

    /// The id of a load that names none: by default the file's (or directory's) name.
    func defaultId(_ params: ModelsLoadParams, file: URL) -> String

    /// Called after a model of this family was unloaded, to drop what the daemon keeps for it.
    func unloaded(id: String, services: Services)

    /// Registers the methods this family serves.
    func registerHandlers(_ table: inout HandlerTable, services: Services)
}

extension ModelFamily {
    var kind: String { Self.kind }
    func validate(_ request: ModelLoadArguments) throws {}
    func memoryEstimate(_ request: ModelLoadArguments) -> Int { fileBytes(request.file) }
    func satisfies(_ params: ModelsLoadParams, resident: ModelInfo) -> Bool { true }
    func defaultId(_ params: ModelsLoadParams, file: URL) -> String { file.lastPathComponent }
    func unloaded(id: String, services: Services) {}
    func registerHandlers(_ table: inout HandlerTable, services: Services) {}
}

/// A `models/load` request once its id is settled.
struct ModelLoadArguments: Sendable {
    let id: String
    let file: URL
    let params: ModelsLoadParams
}

/// The model families a daemon serves, in the order `initialize` lists their kinds.
struct ModelFamilies: Sendable {
    /// Every family built into vlmd. Adding a family is adding it here.
    static let registered: [any ModelFamily] = [CLIPFamily(), LanguageModelFamily(), ProjectorFamily()]

    let all: [any ModelFamily]

    init(_ families: [any ModelFamily] = Self.registered) {
        precondition(Set(families.map(\.kind)).count == families.count, "two model families share a kind")
        all = families
    }

    var kinds: [String] { all.map(\.kind) }

    func named(_ kind: String) -> (any ModelFamily)? { all.first { $0.kind == kind } }

    /// The family `kind` names; -32602 listing the registered kinds otherwise.
    func family(kind: String) throws -> any ModelFamily {
        guard let family = named(kind) else {
            throw RPCError.invalidParams("params.kind: expected one of \(kinds.map { "\"\($0)\"" }.joined(separator: ", ")), got \"\(kind)\"")
        }
        return family
    }
}

func fileBytes(_ url: URL) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.intValue ?? 0
}
