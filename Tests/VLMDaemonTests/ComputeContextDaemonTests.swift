import Foundation
import Testing
import VLMTensor
import VLMWire
@testable import VLMDaemon

/// A family that exists only here: its one method reports the thread count of the `ComputeContext`
/// its computation was handed, the only place any model gets a thread count from.
private struct ProbeFamily: ModelFamily {
    static let kind = "probe"

    final class Model: ResidentModel {
        let id: String, path: String
        init(id: String, path: String) { self.id = id; self.path = path }
        var info: ModelInfo { ModelInfo(id: id, kind: ProbeFamily.kind, path: path, memoryBytes: 1) }
    }

    func load(_ request: ModelLoadArguments) throws -> Model { Model(id: request.id, path: request.file.path) }

    struct ThreadsRequest: RequestType {
        typealias Params = ModelsUnloadParams
        typealias Result = Int
        static let method = "probe/threads"
    }

    func registerHandlers(_ table: inout HandlerTable, services: Services) {
        table.register(ThreadsRequest.self) { params, context in
            _ = try await services.model(params.id, of: ProbeFamily.self)
            return try await context.compute { compute in compute.threads }
        }
    }
}

/// One client connection of a daemon whose Services (models, thread count) others share.
private struct Connection {
    let recorder = Recorder()
    let daemon: Daemon

    init(_ services: Services) { daemon = Daemon(services: services, sink: recorder) { _ in } }

    func request(_ id: Int64, _ method: String, _ params: JSONValue = [:]) async -> JSONValue {
        await daemon.receive(.message(try! JSONCoding.encode(
            ["jsonrpc": "2.0", "id": .int(id), "method": .string(method), "params": params] as JSONValue)))
        while true {
            if let reply = await recorder.reply(to: id) { return reply }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }
}

@Suite struct ComputeContextDaemonTests {
    /// On a shared daemon a model loaded by one client computes, on its next request, with the
    /// thread count a later client's `initialize` set: models keep no thread count of their own.
    @Test func initializeThreadsReachAModelLoadedBefore() async throws {
        var configuration = DaemonConfiguration()
        configuration.threads = 2
        let outbox = Outbox(sink: DiscardingSink(), stderrLogLevel: configuration.stderrLogLevel)
        let services = Services(configuration: configuration, outbox: outbox,
                                families: ModelFamilies(ModelFamilies.registered + [ProbeFamily()]))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("probe-\(UUID().uuidString)")
        try Data([1]).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }

        let first = Connection(services)
        _ = await first.request(0, "initialize")
        let loaded = await first.request(1, "models/load", ["kind": "probe", "path": .string(file.path), "id": "p"])
        #expect(loaded["result"]?["id"] == "p")
        #expect(await first.request(2, "probe/threads", ["id": "p"])["result"] == 2)

        let second = Connection(services)
        let initialized = await second.request(0, "initialize", ["initializationOptions": ["threads": 1]])
        #expect(initialized["result"]?["serverInfo"] != nil)
        #expect(await first.request(3, "probe/threads", ["id": "p"])["result"] == 1)
    }

    /// Cancellation from any engine is mapped in one place: -32800, with the partial result (already
    /// in wire form) as data when there is one, and exactly `RPCError.cancelled` when there is none.
    @Test func computeCancelledMapsOnceToRequestCancelled() throws {
        #expect(ComputeCancelled().rpcError == RPCError.cancelled)
        let soFar = EncodeTextResult(model: "m", templates: nil, texts: [])
        let withPartial = ComputeCancelled(partial: soFar).rpcError
        #expect(withPartial.code == ErrorCode.requestCancelled && withPartial.message == RPCError.cancelled.message)
        #expect(withPartial.data == (try JSONCoding.value(of: soFar)))
    }
}
