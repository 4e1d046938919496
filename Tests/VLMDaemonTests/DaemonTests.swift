import Foundation
import Testing
import VLMRPC
import VLMWire
@testable import VLMDaemon

/// Collects what the daemon writes, decoded, in order.
actor Recorder: MessageSink {
    private(set) var messages: [JSONValue] = []
    private var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

    func send(_ body: Data) async {
        messages.append((try? JSONCoding.decode(JSONValue.self, from: body)) ?? .null)
        let ready = waiters.filter { messages.count >= $0.count }
        waiters.removeAll { messages.count >= $0.count }
        for waiter in ready { waiter.continuation.resume() }
    }

    func waitFor(_ count: Int) async {
        if messages.count >= count { return }
        await withCheckedContinuation { waiters.append((count, $0)) }
    }

    func reply(to id: Int64) -> JSONValue? {
        messages.first { $0["id"] == .int(id) && $0["method"] == nil }
    }

    func replies(to id: Int64) -> Int {
        messages.filter { $0["id"] == .int(id) && $0["method"] == nil }.count
    }
}

struct Boom: Error {}

/// Methods only the tests register: one that always throws, one that computes until cancelled.
enum ThrowingRequest: RequestType {
    static let method = "test/throw"
    typealias Params = NoParams
    typealias Result = Int
}

enum ComputeRequest: RequestType {
    static let method = "test/compute"
    typealias Params = PingParams
    typealias Result = Int
}

struct Harness {
    let recorder = Recorder()
    let daemon: Daemon
    let exitCode = Mutex<Int32?>(nil)

    init() {
        let exitCode = self.exitCode
        daemon = Daemon(configuration: DaemonConfiguration(), sink: recorder, extraHandlers: { table in
            table.register(ThrowingRequest.self) { _, _ in throw Boom() }
            table.register(ComputeRequest.self) { params, context in
                // A compute loop that only stops when the cancellation flag is seen.
                try await context.compute { compute in
                    var steps = 0
                    while true {
                        try compute.checkCancellation()
                        usleep(1000)
                        steps += 1
                        if let limit = params.delayMs, steps >= limit { return steps }
                    }
                }
            }
        }) { code in exitCode.withLock { $0 = code } }
    }

    func send(_ json: JSONValue) async {
        await daemon.receive(.message(try! JSONCoding.encode(json)))
    }

    func request(_ id: Int64, _ method: String, _ params: JSONValue = [:]) async {
        await send(["jsonrpc": "2.0", "id": .int(id), "method": .string(method), "params": params])
    }

    /// A well-formed request, built from its type as a client would.
    func request<Request: RequestType>(_ id: Int64, _ request: Request.Type, _ params: Request.Params) async {
        await self.request(id, Request.method, try! JSONCoding.value(of: params))
    }

    func initialize() async {
        await request(0, "initialize", ["clientInfo": ["name": "tests"]])
        await recorder.waitFor(1)
    }

    /// Waits until request `id` has its reply.
    func awaitReply(_ id: Int64) async -> JSONValue {
        while true {
            if let reply = await recorder.reply(to: id) { return reply }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }
}

@Suite struct DaemonTests {
    @Test func requestsBeforeInitializeAreRefused() async {
        let h = Harness()
        await h.request(1, PingRequest.self, PingParams())
        #expect(await h.awaitReply(1)["error"]?["code"] == .int(-32002))
    }

    @Test func initializeAdvertisesLimitsAndMethods() async {
        let h = Harness()
        await h.initialize()
        let result = await h.awaitReply(0)["result"]
        let experimental = result?["capabilities"]?["experimental"]
        #expect(experimental?["limits"]?["maxMessageBytes"] == .int(Int64(DaemonConfiguration().maxMessageBytes)))
        guard case .array(let methods)? = experimental?["methods"] else { Issue.record("no methods"); return }
        #expect(methods.contains("ping") && methods.contains("daemon/status"))
    }

    @Test func unknownMethodInvalidParamsAndInternalErrors() async {
        let h = Harness()
        await h.initialize()
        await h.request(1, "no/such")
        await h.request(2, "ping", ["delayMs": "soon"])
        await h.request(3, ThrowingRequest.self, NoParams())
        await h.request(4, "ping", [1, 2])
        #expect(await h.awaitReply(1)["error"]?["code"] == .int(-32601))
        let invalid = await h.awaitReply(2)["error"]
        #expect(invalid?["code"] == .int(-32602))
        #expect(invalid?["message"] == "params.delayMs: expected an integer")
        #expect(await h.awaitReply(3)["error"]?["code"] == .int(-32603))
        #expect(await h.awaitReply(4)["error"]?["code"] == .int(-32602))
        // The daemon still serves after all of that.
        await h.request(5, PingRequest.self, PingParams())
        #expect(await h.awaitReply(5)["result"]?["pong"] == true)
    }

    @Test func cancellationGetsExactlyOneReply() async throws {
        let h = Harness()
        await h.initialize()
        await h.request(1, PingRequest.self, PingParams(delayMs: 60_000))
        await h.request(2, PingRequest.self, PingParams())
        #expect(await h.awaitReply(2)["result"]?["pong"] == true)  // a short request is not blocked
        await h.send(["jsonrpc": "2.0", "method": "$/cancelRequest", "params": ["id": 1]])
        #expect(await h.awaitReply(1)["error"]?["code"] == .int(-32800))
        await h.send(["jsonrpc": "2.0", "method": "$/cancelRequest", "params": ["id": 1]])  // late cancel: ignored
        try await Task.sleep(for: .milliseconds(50))
        #expect(await h.recorder.replies(to: 1) == 1)
    }

    @Test func cancellationReachesComputeLoopsOnWorkerThreads() async {
        let h = Harness()
        await h.initialize()
        await h.request(1, ComputeRequest.self, PingParams())
        try? await Task.sleep(for: .milliseconds(30))
        await h.send(["jsonrpc": "2.0", "method": "$/cancelRequest", "params": ["id": 1]])
        #expect(await h.awaitReply(1)["error"]?["code"] == .int(-32800))
        await h.request(2, ComputeRequest.self, PingParams(delayMs: 3))
        #expect(await h.awaitReply(2)["result"] == .int(3))
    }

    @Test func duplicateInFlightIDIsRejected() async {
        let h = Harness()
        await h.initialize()
        // The first ping waits until it is cancelled: the second arrives while it is in flight, however slow the machine.
        await h.request(1, PingRequest.self, PingParams(delayMs: 60_000))
        await h.request(1, PingRequest.self, PingParams())
        await h.recorder.waitFor(2)
        let first = await h.recorder.messages[1]
        #expect(first["error"]?["code"] == .int(-32600))
        await h.send(["jsonrpc": "2.0", "method": "$/cancelRequest", "params": ["id": 1]])
        while await h.recorder.replies(to: 1) < 2 { try? await Task.sleep(for: .milliseconds(2)) }
        #expect(await h.recorder.messages.last { $0["id"] == .int(1) }?["error"]?["code"] == .int(-32800))
    }

    @Test func shutdownThenExitCodes() async {
        let h = Harness()
        await h.initialize()
        await h.request(1, ShutdownRequest.self, NoParams())
        #expect(await h.awaitReply(1)["result"] == .null)
        await h.request(2, PingRequest.self, PingParams())
        #expect(await h.awaitReply(2)["error"]?["code"] == .int(-32600))
        await h.send(["jsonrpc": "2.0", "method": "exit"])
        #expect(h.exitCode.withLock { $0 } == 0)
    }

    @Test func exitWithoutShutdownIsCodeOne() async {
        let h = Harness()
        await h.initialize()
        await h.send(["jsonrpc": "2.0", "method": "exit"])
        #expect(h.exitCode.withLock { $0 } == 1)
    }

    @Test func endOfInputCancelsInFlightRequestsAndExits() async {
        let h = Harness()
        await h.initialize()
        await h.request(1, PingRequest.self, PingParams(delayMs: 60_000))
        let (stream, continuation) = AsyncStream<FrameEvent>.makeStream()
        continuation.finish()
        await h.daemon.run(events: stream)
        #expect(await h.recorder.reply(to: 1)?["error"]?["code"] == .int(-32800))
        #expect(h.exitCode.withLock { $0 } == 1)
    }

    @Test func oversizeAndBadHeaderEventsAreAnsweredWithNullID() async {
        let h = Harness()
        await h.daemon.receive(.oversize(length: 10, limit: 5))
        await h.daemon.receive(.badHeader("missing Content-Length header"))
        await h.recorder.waitFor(2)
        let messages = await h.recorder.messages
        #expect(messages[0]["id"] == .null && messages[0]["error"]?["code"] == .int(-32600))
        #expect(messages[1]["id"] == .null && messages[1]["error"]?["code"] == .int(-32700))
    }

    @Test func streamingSendsPartialsAndProgressBeforeTheReply() async {
        let h = Harness()
        await h.initialize()
        await h.request(1, DebugStreamRequest.self, DebugStreamParams(count: 5, workDoneToken: .string("w"), partialResultToken: .string("p")))
        _ = await h.awaitReply(1)
        let messages = await h.recorder.messages.dropFirst()
        let partials = messages.filter { $0["params"]?["token"] == "p" }.compactMap { $0["params"]?["value"]?["index"] }
        #expect(partials == [0, 1, 2, 3, 4])
        let kinds = messages.filter { $0["params"]?["token"] == "w" }.compactMap { $0["params"]?["value"]?["kind"]?.stringValue }
        #expect(kinds.first == "begin" && kinds.last == "end")
        #expect(messages.last?["id"] == .int(1))
    }
}
