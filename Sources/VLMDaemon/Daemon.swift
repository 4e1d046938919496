import Foundation
import VLMRPC
import VLMTensor
import VLMWire

/// The daemon: lifecycle, dispatch and cancellation. Messages are received one at a time, in
/// order; lifecycle messages are handled inline so their order is the client's order, and every
/// other request runs as its own task so a long one never blocks a short one.
public actor Daemon {
    enum Phase { case starting, running, shuttingDown }

    let configuration: DaemonConfiguration
    let outbox: Outbox
    private var phase = Phase.starting
    private var table: HandlerTable
    private var inFlight: [RequestID: InFlight] = [:]
    /// Large bodies being parsed on a compute thread, so they never hold up the messages behind them.
    private var pendingParses: [Int: Task<Void, Never>] = [:]
    /// Replies taken out of `inFlight` but not yet written: exit waits for them too.
    private var repliesBeingSent = 0
    private var parseSequence = 0
    /// Ids cancelled while some body was still being parsed: the request may be in that body.
    private var earlyCancels: Set<RequestID> = []
    private let onExit: @Sendable (Int32) -> Void
    let services: Services

    struct InFlight {
        let method: String
        let started: ContinuousClock.Instant
        let task: Task<Void, Never>
        let context: RequestContext
    }

    /// - Parameters:
    ///   - onExit: called with the exit code on `exit` or end of input, after every reply is written.
    ///   - extraHandlers: registers methods beyond the built-in ones (embedders' own methods, tests).
    public init(
        configuration: DaemonConfiguration, sink: any MessageSink,
        extraHandlers: (inout HandlerTable) -> Void = { _ in },
        onExit: @escaping @Sendable (Int32) -> Void
    ) {
        let outbox = Outbox(sink: sink, stderrLogLevel: configuration.stderrLogLevel)
        self.init(services: Services(configuration: configuration, outbox: outbox), outbox: outbox,
                  extraHandlers: extraHandlers, onExit: onExit)
    }

    /// One connection of several sharing `services` (models, caches): this connection's lifecycle,
    /// requests and cancellation are its own. `onExit` ends the connection, not the process.
    public init(
        services: Services, sink: any MessageSink,
        extraHandlers: (inout HandlerTable) -> Void = { _ in },
        onExit: @escaping @Sendable (Int32) -> Void
    ) {
        let outbox = Outbox(sink: sink, stderrLogLevel: services.configuration.stderrLogLevel)
        self.init(services: services, outbox: outbox, extraHandlers: extraHandlers, onExit: onExit)
    }

    private init(
        services: Services, outbox: Outbox, extraHandlers: (inout HandlerTable) -> Void,
        onExit: @escaping @Sendable (Int32) -> Void
    ) {
        self.configuration = services.configuration
        self.outbox = outbox
        self.onExit = onExit
        self.services = services
        var table = HandlerTable()
        registerHandlers(&table, services: services)
        extraHandlers(&table)
        // daemon/status reads the in-flight table, which only the daemon has.
        let statusSource = StatusSource()
        table.register(StatusRequest.self) { _, _ in
            guard let daemon = statusSource.daemon else { throw CancellationError() }
            return await daemon.status()
        }
        self.table = table
        statusSource.daemon = self
        services.connections.add(self)
    }

    /// The request type behind each method this connection serves.
    var requestTypes: [String: any RequestType.Type] { table.requestTypes }

    /// Daemon-wide: the requests of every connection, the shared models and caches.
    func status() async -> StatusResult {
        var requests = inFlightSummary()
        for other in services.connections.all where other !== self {
            requests += await other.inFlightSummary()
        }
        requests.sort { $0.runningSeconds > $1.runningSeconds }
        return StatusResult(
            uptimeSeconds: (ContinuousClock.now - services.startedAt).seconds,
            requestsInFlight: requests.count,
            inFlight: requests,
            models: await services.registry.list,
            memory: MemoryStatus(
                modelBytes: await services.registry.usedBytes, generationBytes: await services.registry.generationBytes, budgetBytes: configuration.memoryBudgetBytes,
                residentBytes: residentMemoryBytes()),
            caches: await services.cacheStatuses(),
            logLinesDropped: outbox.stderr.droppedLines,
            modelLoads: await services.registry.loads,
            connections: services.connections.all.count)
    }

    /// Reads frames until end of input, then cancels what is still running and exits.
    public func run(events: AsyncStream<FrameEvent>) async {
        for await event in events {
            await receive(event)
        }
        await endOfInput()
        services.connections.remove(self)
    }

    public func receive(_ event: FrameEvent) async {
        switch event {
        case .message(let body) where body.count <= Self.inlineParseBytes:
            await receive(IncomingMessage.parse(body, maxDepth: configuration.maxJSONDepth))
        case .message(let body):
            parseInBackground(body)
        case .oversize(let length, let limit):
            outbox.log(.warning, "skipped a \(length)-byte message (limit \(limit))")
            await reply(nil, error: .invalidRequest(
                "message of \(length) bytes exceeds the limit of \(limit) bytes (see maxMessageBytes in initialize); it was skipped"))
        case .badHeader(let reason):
            await reply(nil, error: .parseError("bad message header: \(reason)"))
        }
    }

    /// Bodies up to this size are parsed in the message loop (well under a millisecond); larger ones
    /// on a compute thread.
    static let inlineParseBytes = 64 << 10

    private func parseInBackground(_ body: Data) {
        parseSequence += 1
        let sequence = parseSequence
        let maxDepth = configuration.maxJSONDepth
        pendingParses[sequence] = Task {
            let message = try? await ComputeThreads.run(ComputeContext()) { _ in
                IncomingMessage.parse(body, maxDepth: maxDepth)
            }
            if let message { await self.receive(message) }
            self.parseFinished(sequence)
        }
    }

    private func parseFinished(_ sequence: Int) {
        pendingParses[sequence] = nil
        if pendingParses.isEmpty { earlyCancels.removeAll() }
    }

    /// Lifecycle steps apply after every message received before them, including those still being parsed.
    private func awaitPendingParses() async {
        while let pending = pendingParses.values.first { await pending.value }
    }

    func receive(_ message: IncomingMessage) async {
        switch message {
        case .invalid(let id, let error):
            await reply(id, error: error)
        case .response:
            break  // vlmd sends no requests to the client, so there is nothing to match a response to
        case .notification(let method, let params):
            await receiveNotification(method, params)
        case .request(let id, let method, let params):
            await receiveRequest(id, method, params)
        }
    }

    private func receiveNotification(_ method: String, _ params: JSONValue?) async {
        switch method {
        case Method.exit:
            await awaitPendingParses()
            await exit(code: phase == .shuttingDown ? 0 : 1)
        case Method.cancelRequest:
            guard let id = params?["id"].flatMap(RequestID.init) else {
                outbox.log(.warning, "$/cancelRequest without a valid 'id' was ignored")
                return
            }
            if inFlight[id] == nil, !pendingParses.isEmpty, earlyCancels.count < 10_000 { earlyCancels.insert(id) }
            cancel(id)
        case Method.setTrace:
            if let value = params?["value"]?.stringValue, ["off", "messages", "verbose"].contains(value) {
                outbox.setTrace(value)
            } else {
                outbox.log(.warning, "$/setTrace expects value \"off\", \"messages\" or \"verbose\"")
            }
        case Method.initialized:
            break
        default:
            // LSP: notifications starting with "$/" may be ignored; others are logged so typos show up.
            if !method.hasPrefix("$/") { outbox.log(.warning, "ignored unknown notification '\(method)'") }
        }
    }

    private func receiveRequest(_ id: RequestID, _ method: String, _ params: JSONValue?) async {
        await outbox.traceMessage("Received request '\(method) - (\(id))'.", verbose: params.map { "Params: \($0)" })
        switch (phase, method) {
        case (.starting, InitializeRequest.method):
            await initialize(id, params)
        case (.starting, _):
            await reply(id, error: .notInitialized)
        case (.shuttingDown, _):
            await reply(id, error: .invalidRequest("server is shutting down: only 'exit' is accepted after 'shutdown'"))
        case (.running, InitializeRequest.method):
            await reply(id, error: .invalidRequest("'initialize' may be sent only once"))
        case (.running, ShutdownRequest.method):
            await awaitPendingParses()
            phase = .shuttingDown
            await reply(id, result: JSONValue.null)
        case (.running, _):
            await dispatch(id, method, params)
        }
    }

    private func initialize(_ id: RequestID, _ raw: JSONValue?) async {
        let params: InitializeParams
        do { params = try decodeParams(InitializeParams.self, from: raw) } catch {
            await reply(id, error: error as? RPCError ?? .invalidParams("\(error)"))
            return
        }
        if let options = params.initializationOptions {
            if let name = options.logLevel {
                guard let level = LogLevel(name: name) else {
                    await reply(id, error: .invalidParams(
                        "params.initializationOptions.logLevel: expected \"error\", \"warning\", \"info\", \"debug\" or \"off\""))
                    return
                }
                outbox.setClientLogLevel(level)
            }
            if let threads = options.threads {
                guard (1...256).contains(threads) else {
                    await reply(id, error: .invalidParams("params.initializationOptions.threads: expected an integer in 1...256"))
                    return
                }
                services.setThreads(threads)
            }
        }
        if let trace = params.trace { outbox.setTrace(trace) }
        phase = .running
        let client = params.clientInfo.map { "\($0.name) \($0.version ?? "")" } ?? "unnamed client"
        outbox.log(.info, "initialized by \(client)")
        await reply(id, result: initializeResult())
    }

    func initializeResult() -> InitializeResult {
        InitializeResult(
            capabilities: ServerCapabilities(experimental: ExperimentalCapabilities(
                protocolVersion: ProtocolVersion.current,
                limits: Limits(
                    maxMessageBytes: configuration.maxMessageBytes, maxImagePixels: configuration.maxImagePixels,
                    memoryBudgetBytes: configuration.memoryBudgetBytes, threads: services.threads,
                maxJSONDepth: configuration.maxJSONDepth),
                methods: [InitializeRequest.method, ShutdownRequest.method, Method.exit, Method.cancelRequest, Method.setTrace] + table.methods,
                modelKinds: services.families.kinds, imagePrecisions: BF16.availablePrecisions.map(\.rawValue))),
            serverInfo: ServerInfo(name: "vlmd", version: ProtocolVersion.current))
    }

    private func dispatch(_ id: RequestID, _ method: String, _ params: JSONValue?) async {
        guard let handler = table.handler(for: method) else {
            await reply(id, error: .methodNotFound(method))
            return
        }
        guard inFlight[id] == nil else {
            await reply(id, error: .invalidRequest("request id \(id) is already in flight; ids must be unique"))
            return
        }
        let tokens = (try? decodeParams(StreamingTokens.self, from: params)) ?? StreamingTokens()
        let context = RequestContext(id: id, method: method, tokens: tokens, outbox: outbox, configuration: configuration,
                                     threads: services.threads)
        let executor: RequestExecutor? = Self.cheapMethods.contains(method) ? nil : .shared
        let task = Task(executorPreference: executor) {
            let outcome: Result<Data, Error>
            do {
                outcome = .success(try await RequestContext.$current.withValue(context) { try await handler(params, context) })
            } catch { outcome = .failure(error) }
            await self.finish(id, context: context, outcome: outcome)
        }
        inFlight[id] = InFlight(method: method, started: .now, task: task, context: context)
        services.requestStarted(context)
        if earlyCancels.remove(id) != nil { cancel(id) }
    }

    /// Methods that never block a thread; every other handler runs on the RequestExecutor.
    static let cheapMethods: Set<String> = [PingRequest.method, StatusRequest.method, ModelsListRequest.method, DebugStreamRequest.method]

    /// Sends the one reply a request gets, whatever happened to it.
    private func finish(_ id: RequestID, context: RequestContext, outcome: Result<Data, Error>) async {
        let elapsed = inFlight[id].map { ContinuousClock.now - $0.started }
        inFlight[id] = nil
        repliesBeingSent += 1
        defer {
            repliesBeingSent -= 1
            services.requestFinished(context)
        }
        switch outcome {
        case .success(let result):
            await outbox.sink.send(OutgoingMessage.response(id: id, encodedResult: result))
        case .failure(let error):
            await reply(id, error: rpcError(for: error, context: context))
        }
        if let elapsed {
            await outbox.traceMessage("Sending response '\(context.method) - (\(id))'. Processing request took \(elapsed).")
        }
    }

    /// Maps anything a handler throws to a JSON-RPC error: a handler never takes the daemon down.
    private func rpcError(for error: Error, context: RequestContext) -> RPCError {
        let mapped = (error as? RPCError) ?? (error as? RPCErrorConvertible)?.rpcError
        // A handler's own -32800 may carry what it produced before stopping; keep it.
        if let mapped, mapped.code == ErrorCode.requestCancelled || !context.cancellation.isCancelled { return mapped }
        if context.cancellation.isCancelled || error is CancellationError { return .cancelled }
        outbox.log(.error, "'\(context.method)' failed: \(error)")
        return .internalError("internal error in '\(context.method)': \(error)")
    }

    private func cancel(_ id: RequestID) {
        guard let request = inFlight[id] else { return }  // already answered: LSP says ignore
        request.context.cancellation.cancel()
        request.task.cancel()
    }

    private func endOfInput() async {
        await awaitPendingParses()
        await cancelInFlight(reason: "end of input")
        await exit(code: phase == .shuttingDown ? 0 : 1)
    }

    /// For SIGTERM/SIGINT/SIGHUP: cancels every request in flight and waits until each has sent its
    /// reply. Does not exit; the caller does, once the output is flushed.
    public func terminate(reason: String) async {
        await cancelInFlight(reason: reason)
    }

    /// Cancels every request in flight and waits until each has replied, but not past `grace`
    /// (a model load cannot be interrupted).
    private func cancelInFlight(reason: String, grace: Duration = .seconds(10)) async {
        let running = Array(inFlight.values)
        guard !running.isEmpty || repliesBeingSent > 0 else { return }
        outbox.log(.info, "\(reason): cancelling \(running.count) request(s) in flight")
        for request in running {
            request.context.cancellation.cancel()
            request.task.cancel()
        }
        let answered = Mutex(false)
        Task {
            for request in running { await request.task.value }
            answered.withLock { $0 = true }
        }
        let deadline = ContinuousClock.now + grace
        while !answered.withLock({ $0 }) || repliesBeingSent > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// `exit` and end of input: every request still in flight is cancelled and answered first.
    private func exit(code: Int32) async {
        await cancelInFlight(reason: "exit")
        onExit(code)
    }

    func reply<R: Encodable>(_ id: RequestID, result: R) async {
        do { await outbox.sink.send(try OutgoingMessage.response(id: id, result: result)) } catch {
            await reply(id, error: .internalError("could not encode the result: \(error)"))
        }
    }

    func reply(_ id: RequestID?, error: RPCError) async {
        await outbox.sink.send(OutgoingMessage.error(id: id, error))
    }

    // MARK: status

    func inFlightSummary() -> [InFlightRequest] {
        let now = ContinuousClock.now
        return inFlight.map { id, request in
            InFlightRequest(id: id, method: request.method, runningSeconds: (now - request.started).seconds)
        }.sorted { $0.runningSeconds > $1.runningSeconds }
    }
}

/// Errors from the model modules that know their JSON-RPC code (conformances live in the daemon,
/// so the model modules need not know about JSON-RPC).
public protocol RPCErrorConvertible: Error {
    var rpcError: RPCError { get }
}

/// A late-bound weak reference to the daemon for the status handler, registered before `self` exists.
private final class StatusSource: @unchecked Sendable {
    weak var daemon: Daemon?  // written once in Daemon.init before any request can run
}

/// Resident set size from /proc (Linux); nil elsewhere.
func residentMemoryBytes() -> Int? {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
    let fields = statm.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

extension Duration {
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) * 1e-18
    }
}
