import Foundation
import VLMDaemon
import VLMRPC
import VLMWire

/// vlmd as a Model Context Protocol server (stdio transport: one JSON-RPC message per line).
///
/// An adapter, not a second daemon: MCP's lifecycle, `tools/list` and `ping` are answered here;
/// each `tools/call` becomes the daemon's own JSON-RPC request, fed to a `Daemon` in-process, so
/// every handler, limit and error code is the one the LSP-framed protocol has. The daemon's
/// work-done progress comes back as `notifications/progress`, its reply as the tool's result, and
/// MCP's `notifications/cancelled` goes to it as `$/cancelRequest`.
public actor MCPServer {
    /// Protocol revisions reachable with `initialize`, oldest first; the newest is offered when the
    /// client asks for one not listed.
    static let protocolVersions = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]
    /// Structured tool output (`structuredContent`, `outputSchema`) exists from this revision on.
    static let structuredOutputVersion = "2025-06-18"

    public nonisolated let daemon: Daemon
    private let output: any MessageSink
    private let maxJSONDepth: Int
    private let logLevel: LogLevel
    private let catalog = ToolCatalog.embedded
    private let toDaemon: AsyncStream<FrameEvent>.Continuation
    private let daemonEvents: AsyncStream<FrameEvent>
    private var protocolVersion = MCPServer.protocolVersions.last!

    /// A tool call the daemon is working on, keyed by the daemon-side request id.
    private struct Call {
        let clientID: RequestID
        let tool: ToolCatalog.Tool
        let progressToken: JSONValue?
        var progressSent = 0
        var cancelled = false
    }
    private var calls: [RequestID: Call] = [:]
    private var daemonIDs: [RequestID: RequestID] = [:]  // client's id -> daemon-side id
    private var sequence = 0

    /// - Parameters:
    ///   - output: where MCP messages go (a line writer on stdout).
    ///   - onExit: as for `Daemon`: called once stdin has ended and every call is answered.
    public init(configuration: DaemonConfiguration, output: any MessageSink, onExit: @escaping @Sendable (Int32) -> Void) {
        let bridge = DaemonOutput()
        self.daemon = Daemon(configuration: configuration, sink: bridge, onExit: onExit)
        self.output = output
        self.maxJSONDepth = configuration.maxJSONDepth
        self.logLevel = configuration.stderrLogLevel
        (daemonEvents, toDaemon) = AsyncStream<FrameEvent>.makeStream()
        bridge.server = self
    }

    /// Serves MCP messages until end of input, then lets the daemon finish (it calls `onExit`).
    public func run(lines: AsyncStream<FrameEvent>) async {
        sendToDaemon(id: .string("mcp-initialize"), method: InitializeRequest.method, params: [
            "processId": .null, "capabilities": .object([:]), "clientInfo": ["name": "vlmd --mcp"],
        ])
        let daemon = self.daemon
        let events = daemonEvents
        let daemonLoop = Task { await daemon.run(events: events) }
        for await event in lines { await receive(event) }
        // MCP's stdio shutdown is closing stdin: the daemon's orderly end (exit code 0).
        sendToDaemon(id: .string("mcp-shutdown"), method: ShutdownRequest.method, params: .null)
        toDaemon.finish()
        await daemonLoop.value
    }

    private func receive(_ event: FrameEvent) async {
        switch event {
        case .message(let body):
            await receive(IncomingMessage.parse(body, maxDepth: maxJSONDepth))
        case .oversize(let length, let limit):
            await reply(nil, error: .invalidRequest("a \(length)-byte line exceeds the limit of \(limit) bytes (vlmd --max-message-bytes); it was skipped"))
        case .badHeader(let reason):
            await reply(nil, error: .parseError(reason))
        }
    }

    private func receive(_ message: IncomingMessage) async {
        switch message {
        case .invalid(let id, let error):
            await reply(id, error: error)
        case .response:
            break  // the server sends no requests, so there is nothing to match
        case .notification(let method, let params):
            if method == "notifications/cancelled" { cancel(params) }
            // notifications/initialized and others need no answer
        case .request(let id, let method, let params):
            await receiveRequest(id, method, params)
        }
    }

    private func receiveRequest(_ id: RequestID, _ method: String, _ params: JSONValue?) async {
        switch method {
        case "initialize":
            await reply(id, result: initialize(params))
        case "ping":
            await reply(id, result: .object([:]))
        case "tools/list":
            await reply(id, result: ["tools": catalog.listing(structured: hasStructuredOutput)])
        case "tools/call":
            await callTool(id, params)
        default:
            await reply(id, error: .methodNotFound(method))
        }
    }

    private func initialize(_ params: JSONValue?) -> JSONValue {
        if let requested = params?["protocolVersion"]?.stringValue, Self.protocolVersions.contains(requested) {
            protocolVersion = requested
        }
        return [
            "protocolVersion": .string(protocolVersion),
            "capabilities": ["tools": ["listChanged": false]],
            "serverInfo": ["name": "vlmd", "title": "vlmd vision-language daemon", "version": .string(ProtocolVersion.current)],
            "instructions": .string(Self.instructions),
        ]
    }

    static let instructions = """
        vlmd keeps vision-language models resident. Load a model first with load_model (kind "clip" for \
        encode_image, classify and attribute; a "gguf" language model plus a CLIP or "mmproj" model for \
        generate_with_visual_selection), then name it in the other tools' "model"/"clip"/"lm" arguments \
        (optional when exactly one model of that kind is loaded). list_models shows what is loaded. Image \
        paths are read on the machine vlmd runs on.
        """

    private var hasStructuredOutput: Bool {
        (Self.protocolVersions.firstIndex(of: protocolVersion) ?? 0) >= Self.protocolVersions.firstIndex(of: Self.structuredOutputVersion)!
    }

    // MARK: tools/call

    private func callTool(_ id: RequestID, _ params: JSONValue?) async {
        guard let name = params?["name"]?.stringValue else {
            return await reply(id, error: .invalidParams("params.name: expected the tool's name (a string)"))
        }
        guard let tool = catalog.tool(named: name) else {
            let known = catalog.tools.map(\.definition.name).joined(separator: ", ")
            return await reply(id, error: .invalidParams("unknown tool '\(name)' (tools: \(known))"))
        }
        var arguments: [String: JSONValue] = [:]
        switch params?["arguments"] {
        case nil, .null?: break
        case .object(let fields)?: arguments = fields
        case let other?: return await reply(id, error: .invalidParams("params.arguments: expected an object, got \(other.typeName)"))
        }
        guard daemonIDs[id] == nil else {
            return await reply(id, error: .invalidRequest("request id \(id) is already in flight; ids must be unique"))
        }
        sequence += 1
        let daemonID = RequestID.string("mcp-call-\(sequence)")
        // Streaming tokens are the adapter's business: progress goes to the MCP progressToken.
        arguments["partialResultToken"] = nil
        let progressToken = params?["_meta"]?["progressToken"].flatMap { RequestID($0)?.json }
        arguments["workDoneToken"] = progressToken == nil ? nil : daemonID.json
        calls[daemonID] = Call(clientID: id, tool: tool, progressToken: progressToken)
        daemonIDs[id] = daemonID
        sendToDaemon(id: daemonID, method: tool.definition.method, params: .object(arguments))
    }

    /// MCP: the cancelled request gets no reply at all; the daemon stops its work.
    private func cancel(_ params: JSONValue?) {
        guard let clientID = params?["requestId"].flatMap(RequestID.init), let daemonID = daemonIDs[clientID] else { return }
        calls[daemonID]?.cancelled = true
        sendToDaemon(method: Method.cancelRequest, params: ["id": daemonID.json])
    }

    // MARK: from the daemon

    /// Every message the daemon writes comes here instead of stdout.
    fileprivate func fromDaemon(_ body: Data) async {
        switch IncomingMessage.parse(body, maxDepth: 1024) {
        case .response(let id?, let result, let error):
            await finish(id, result: result, error: error)
        case .notification(Method.progress, let params?):
            await forwardProgress(params)
        default:
            break  // the adapter's own initialize/shutdown replies; logs go to stderr anyway
        }
    }

    private func finish(_ daemonID: RequestID, result: JSONValue?, error: RPCError?) async {
        guard let call = calls.removeValue(forKey: daemonID) else { return }
        daemonIDs[call.clientID] = nil
        if call.cancelled {
            // No reply (MCP), but say how it ended: "-32800" means the daemon stopped the work.
            let outcome = error.map { "error \($0.code)" } ?? "a result"
            return log(.info, "cancelled call \(call.clientID) (\(call.tool.definition.name)) ended with \(outcome); no reply sent")
        }
        let content: JSONValue
        if let error {
            content = ToolResult.failure(error)
        } else {
            content = ToolResult.success(call.tool.definition, result ?? .null, structured: hasStructuredOutput)
        }
        await reply(call.clientID, result: content)
    }

    /// Work-done progress (begin, reports, end) as MCP progress: `progress` counts the updates (it
    /// must increase, and message-only reports have no percentage); the percentage is in `message`.
    private func forwardProgress(_ params: JSONValue) async {
        guard let daemonID = params["token"].flatMap(RequestID.init), var call = calls[daemonID],
              let progressToken = call.progressToken, !call.cancelled, let value = params["value"] else { return }
        call.progressSent += 1
        calls[daemonID] = call
        var notice: [String: JSONValue] = ["progressToken": progressToken, "progress": .int(Int64(call.progressSent))]
        if let message = ToolResult.progressMessage(value) { notice["message"] = .string(message) }
        await send(try? OutgoingMessage.notification(method: "notifications/progress", params: JSONValue.object(notice)))
    }

    // MARK: writing

    private func log(_ level: LogLevel, _ message: String) {
        if level >= logLevel { LogWriter.standardError.write("vlmd [\(level)] mcp: \(message)") }
    }

    private func sendToDaemon(id: RequestID? = nil, method: String, params: JSONValue) {
        let body: Data?
        if let id {
            body = try? OutgoingMessage.request(id: id, method: method, params: params)
        } else {
            body = try? OutgoingMessage.notification(method: method, params: params)
        }
        if let body { toDaemon.yield(.message(body)) }
    }

    private func reply(_ id: RequestID, result: JSONValue) async {
        await send(try? OutgoingMessage.response(id: id, result: result))
    }

    private func reply(_ id: RequestID?, error: RPCError) async {
        await send(OutgoingMessage.error(id: id, error))
    }

    private func send(_ body: Data?) async {
        if let body { await output.send(body) }
    }
}

/// The daemon's sink: hands its output to the server, which was created after the daemon.
private final class DaemonOutput: MessageSink, @unchecked Sendable {
    weak var server: MCPServer?  // set once in MCPServer.init, before any message flows

    func send(_ body: Data) async {
        await server?.fromDaemon(body)
    }
}
