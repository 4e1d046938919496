import Foundation
import Testing
import VLMWire
@testable import VLMDaemon

/// A family that exists only here: a "model" is the bytes of a file. It proves that a family plugs in
/// through `ModelFamily` alone: its kind is advertised and loadable, its handlers are served, and
/// models/load's shared rules (idempotence, budget, -32003 naming the file) apply to it unchanged.
struct TextFileFamily: ModelFamily {
    static let kind = "textfile"
    let unloads = Mutex<[String]>([])

    final class Model: ResidentModel {
        let id: String, path: String, text: String
        init(id: String, path: String, text: String) { self.id = id; self.path = path; self.text = text }
        var info: ModelInfo { ModelInfo(id: id, kind: TextFileFamily.kind, path: path, memoryBytes: text.utf8.count) }
    }

    struct NotText: Error, CustomStringConvertible { var description: String { "not UTF-8 text" } }

    func load(_ request: ModelLoadArguments) throws -> Model {
        guard let text = String(data: try Data(contentsOf: request.file), encoding: .utf8) else { throw NotText() }
        return Model(id: request.id, path: request.file.path, text: text)
    }

    func unloaded(id: String, services: Services) { unloads.withLock { $0.append(id) } }

    /// The family's own method, declared as every method is: one request type.
    struct ReadRequest: RequestType {
        typealias Params = ModelsUnloadParams
        typealias Result = String
        static let method = "textfile/read"
    }

    /// The thread count of the `ComputeContext` a computation on the model is handed.
    struct ThreadsRequest: RequestType {
        typealias Params = ModelsUnloadParams
        typealias Result = Int
        static let method = "textfile/threads"
    }

    func registerHandlers(_ table: inout HandlerTable, services: Services) {
        table.register(ReadRequest.self) { params, _ in
            try await services.model(params.id, of: TextFileFamily.self).text
        }
        table.register(ThreadsRequest.self) { params, context in
            _ = try await services.model(params.id, of: TextFileFamily.self)
            return try await context.compute { compute in compute.threads }
        }
    }
}

/// One connection to a daemon serving the built-in families and `TextFileFamily`; several harnesses
/// may share one Services, as the clients of a socket daemon do.
struct FamilyHarness {
    let recorder = Recorder()
    let daemon: Daemon
    let family: TextFileFamily
    let services: Services

    init(budgetBytes: Int = DaemonConfiguration().memoryBudgetBytes, threads: Int = DaemonConfiguration().threads) {
        var configuration = DaemonConfiguration()
        configuration.memoryBudgetBytes = budgetBytes
        configuration.threads = threads
        let family = TextFileFamily()
        let outbox = Outbox(sink: DiscardingSink(), stderrLogLevel: configuration.stderrLogLevel)
        self.init(sharing: Services(configuration: configuration, outbox: outbox,
                                    families: ModelFamilies(ModelFamilies.registered + [family])), family: family)
    }

    /// Another connection to `other`'s daemon.
    init(sharing other: FamilyHarness) { self.init(sharing: other.services, family: other.family) }

    private init(sharing services: Services, family: TextFileFamily) {
        (self.services, self.family) = (services, family)
        daemon = Daemon(services: services, sink: recorder) { _ in }
    }

    func request(_ id: Int64, _ method: String, _ params: JSONValue = [:]) async -> JSONValue {
        await daemon.receive(.message(try! JSONCoding.encode(
            ["jsonrpc": "2.0", "id": .int(id), "method": .string(method), "params": params] as JSONValue)))
        while true {
            if let reply = await recorder.reply(to: id) { return reply }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }
}

func temporaryFile(_ contents: Data) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("family-\(UUID().uuidString).txt")
    try contents.write(to: url)
    return url.path
}

@Suite struct ModelFamilyTests {
    @Test func initializeAdvertisesExactlyTheRegisteredKinds() async {
        let h = FamilyHarness()
        let kinds = await h.request(0, "initialize")["result"]?["capabilities"]?["experimental"]?["modelKinds"]
        #expect(kinds == ["clip", "gguf", "mmproj", "textfile"])
        #expect(ModelFamilies().kinds == ["clip", "gguf", "mmproj"])
    }

    @Test func anUnknownKindIsRefusedNamingEveryRegisteredKind() async throws {
        let h = FamilyHarness()
        _ = await h.request(0, "initialize")
        let error = await h.request(1, "models/load", ["kind": "siglip", "path": .string(try temporaryFile(Data("x".utf8)))])["error"]
        #expect(error?["code"] == .int(-32602))
        #expect(error?["message"] == #"params.kind: expected one of "clip", "gguf", "mmproj", "textfile", got "siglip""#)
    }

    @Test func aPluggedInFamilyLoadsServesAndUnloadsUnderTheSharedRules() async throws {
        let h = FamilyHarness()
        _ = await h.request(0, "initialize")
        let path = try temporaryFile(Data("hello".utf8))
        let loaded = await h.request(1, "models/load", ["kind": "textfile", "path": .string(path), "id": "t"])["result"]
        #expect(loaded?["kind"] == "textfile" && loaded?["memoryBytes"] == 5 && loaded?["alreadyLoaded"] == nil)
        let again = await h.request(2, "models/load", ["kind": "textfile", "path": .string(path)])["result"]
        #expect(again?["id"] == "t" && again?["alreadyLoaded"] == true)
        #expect(await h.request(3, "textfile/read", ["id": "t"])["result"] == "hello")
        #expect(await h.request(4, "models/list")["result"] == [loaded!])
        // An id that names no loaded model is -32001, through the family like any other.
        #expect(await h.request(5, "textfile/read", ["id": "nope"])["error"]?["code"] == .int(-32001))
        let unloaded = await h.request(6, "models/unload", ["id": "t"])["result"]
        #expect(unloaded?["freedBytes"] == 5)
        #expect(h.family.unloads.withLock { $0 } == ["t"])
    }

    @Test func aFamilysLoadErrorIs32003NamingTheFile() async throws {
        let h = FamilyHarness()
        _ = await h.request(0, "initialize")
        let path = try temporaryFile(Data([0xff, 0xfe, 0xfd]))
        let error = await h.request(1, "models/load", ["kind": "textfile", "path": .string(path)])["error"]
        #expect(error?["code"] == .int(-32003))
        #expect(error?["message"]?.stringValue?.contains(path) == true)
        #expect(error?["message"]?.stringValue?.contains("not UTF-8 text") == true)
    }

    @Test func aFamilysEstimateIsReservedAgainstTheBudgetBeforeReading() async throws {
        let h = FamilyHarness(budgetBytes: 4)
        _ = await h.request(0, "initialize")
        let path = try temporaryFile(Data("too long for the budget".utf8))
        let error = await h.request(1, "models/load", ["kind": "textfile", "path": .string(path)])["error"]
        #expect(error?["code"] == .int(-32005))
        #expect(h.family.unloads.withLock { $0 }.isEmpty)
    }
}
