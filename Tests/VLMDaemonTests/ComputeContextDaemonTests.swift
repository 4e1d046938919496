import Foundation
import Testing
import VLMTensor
import VLMWire
@testable import VLMDaemon

@Suite struct ComputeContextDaemonTests {
    /// On a shared daemon a model loaded by one client computes, on its next request, with the
    /// thread count a later client's `initialize` set: models keep no thread count of their own, the
    /// request's `ComputeContext` is the only place a computation gets one.
    @Test func initializeThreadsReachAModelLoadedBefore() async throws {
        let first = FamilyHarness(threads: 2)
        let path = try temporaryFile(Data("hello".utf8))
        _ = await first.request(0, "initialize")
        #expect(await first.request(1, "models/load", ["kind": "textfile", "path": .string(path), "id": "t"])["result"]?["id"] == "t")
        #expect(await first.request(2, "textfile/threads", ["id": "t"])["result"] == 2)

        let second = FamilyHarness(sharing: first)
        #expect(await second.request(0, "initialize", ["initializationOptions": ["threads": 1]])["result"]?["serverInfo"] != nil)
        #expect(await first.request(3, "textfile/threads", ["id": "t"])["result"] == 1)
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
