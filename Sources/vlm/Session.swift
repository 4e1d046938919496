import ArgumentParser
import Foundation
import VLMRPC
import VLMWire

/// Options every subcommand shares: how to reach the daemon and how to print.
struct DaemonOptions: ParsableArguments {
    @Option(help: "Path of the vlmd executable for a private daemon (default: next to vlm, then $PATH).")
    var daemon: String?

    @Option(help: ArgumentHelp(
        "Use the shared daemon listening on this Unix socket (default: $VLMD_SOCKET).",
        discussion: "Without --socket or $VLMD_SOCKET, vlm uses the daemon of `vlm daemon start` if one is up, else starts a private one."))
    var socket: String?

    @Flag(name: .customLong("private"), help: "Always start a private daemon, even when a shared one is running.")
    var privateDaemon = false

    @Option(parsing: .unconditional, help: "Compute threads for the daemon.")
    var threads: Int?

    @Flag(help: "Machine-readable output: JSON lines (one per streamed event, then the result).")
    var json = false

    @Flag(help: "Do not show progress on stderr.")
    var quiet = false

    func validate() throws {
        try require(threads.map { (1...256).contains($0) } ?? true, "--threads must be in 1...256")
    }

    func daemonURL() throws -> URL {
        if let daemon {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: daemon, isDirectory: &isDirectory) else {
                throw ValidationError("--daemon \(daemon): no such file")
            }
            guard !isDirectory.boolValue, FileManager.default.isExecutableFile(atPath: daemon) else {
                throw ValidationError("--daemon \(daemon): not an executable file")
            }
            return URL(fileURLWithPath: daemon)
        }
        let beside = executableDirectory().appendingPathComponent("vlmd")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent("vlmd")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw ValidationError("cannot find vlmd next to vlm or on PATH; pass --daemon PATH")
    }
}

/// One daemon session: start, initialize, run requests, shut down. Ctrl-C is `Interruption`'s.
final class Session: Sendable {
    let client: RPCClient
    let options: DaemonOptions

    private init(client: RPCClient, options: DaemonOptions) {
        self.client = client
        self.options = options
    }

    static func start(_ options: DaemonOptions) async throws -> Session {
        let client = try connect(options)
        Interruption.shared.attach(client)
        let session = Session(client: client, options: options)
        var initOptions = InitializationOptions()
        if let threads = options.threads {
            // Threads are daemon-wide: one client of a shared daemon does not set them for the others.
            if client.ownsDaemon { initOptions.threads = threads } else if !options.quiet {
                Terminal.note("vlm: --threads is ignored by a shared daemon (start it with `vlm daemon start --threads N`)")
            }
        }
        do { _ = try await client.initialize(clientName: "vlm", options: try JSONCoding.value(of: initOptions)) } catch {
            throw RequestFailed(message: "could not start the daemon: \(error)")
        }
        return session
    }

    /// The shared daemon when one is named (--socket, $VLMD_SOCKET; it must be up) or is up on the
    /// default socket; otherwise a private daemon started for this command alone.
    private static func connect(_ options: DaemonOptions) throws -> RPCClient {
        let named = options.socket ?? ProcessInfo.processInfo.environment["VLMD_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        if !options.privateDaemon, options.daemon == nil {
            if let named {
                do { return try RPCClient(socketPath: named) } catch {
                    throw RequestFailed(message: "\(error) (named by \(options.socket == nil ? "$VLMD_SOCKET" : "--socket")); start one with `vlm daemon start`")
                }
            }
            if let shared = try? RPCClient(socketPath: UnixSocket.defaultPath()) { return shared }
        }
        do { return try RPCClient(executable: try options.daemonURL(), arguments: ["--log-level", "warning"]) } catch let error as ValidationError {
            throw error
        } catch {
            throw RequestFailed(message: "could not start the daemon: \(error)")
        }
    }

    /// Sends a request, rendering its progress and streamed partial results as they arrive. When
    /// Ctrl-C cancelled it, `onCancelled` gets what the daemon returned so far (the -32800 error's
    /// data, null if none) and `Interrupted` is thrown.
    func run(
        _ method: String, params: JSONValue, onPartial: (@Sendable (JSONValue) -> Void)? = nil,
        onCancelled: ((JSONValue) -> Void)? = nil
    ) async throws -> JSONValue {
        let id = client.reserveID()
        try Interruption.shared.begin(id)
        defer { Interruption.shared.end(id) }
        let json = options.json, quiet = options.quiet
        let progress = ProgressLine()
        do {
            defer { Terminal.progress(nil) }
            return try await client.request(method, params: params, id: id) { _, notification in
                let value = notification["value"] ?? .null
                if value["kind"] != nil, value["partial"] == nil {
                    if !quiet { progress.show(value) }
                } else if let onPartial {
                    onPartial(value)
                } else if json {
                    Terminal.json(value)
                }
            }
        } catch let error as RPCClient.ResponseError {
            if error.error.code == ErrorCode.requestCancelled, Interruption.shared.isInterrupted {
                onCancelled?(error.error.data ?? .null)
                throw Interrupted()
            }
            throw RequestFailed(message: "\(method) failed: \(error.error.message) (code \(error.error.code))")
        } catch is RPCClient.DaemonExited where Interruption.shared.isInterrupted {
            throw Interrupted()
        }
    }

    /// Sends a request built from its VLMWire type and decodes its result; see `run`.
    func send<Request: RequestType>(
        _ request: Request.Type, _ params: Request.Params, onCancelled: ((JSONValue) -> Void)? = nil
    ) async throws -> Request.Result {
        let reply = try await run(Request.method, params: try JSONCoding.value(of: params), onCancelled: onCancelled)
        return try decodeReply(reply, as: Request.Result.self, method: Request.method)
    }

    /// The same for a request that streams: each partial result reaches `onPartial` as its type.
    func send<Request: StreamingRequestType>(
        _ request: Request.Type, _ params: Request.Params, onPartial: @escaping @Sendable (Request.Partial) -> Void,
        onCancelled: ((JSONValue) -> Void)? = nil
    ) async throws -> Request.Result {
        let reply = try await run(Request.method, params: try JSONCoding.value(of: params), onPartial: { value in
            do { onPartial(try JSONCoding.convert(value, to: Request.Partial.self)) } catch {
                Terminal.note("vlm: skipped a partial result of \(Request.method) it could not read: \(error)")
            }
        }, onCancelled: onCancelled)
        return try decodeReply(reply, as: Request.Result.self, method: Request.method)
    }

    func close() async {
        await client.shutdown()
    }
}

extension RPCClient {
    /// A request built from its VLMWire type, without progress or partial results.
    func send<Request: RequestType>(_ request: Request.Type, _ params: Request.Params) async throws -> Request.Result {
        let reply = try await self.request(Request.method, params: try JSONCoding.value(of: params))
        return try decodeReply(reply, as: Request.Result.self, method: Request.method)
    }
}

/// A reply as its request's result type; a reply of another shape is the daemon's fault, said so.
func decodeReply<Result: Decodable>(_ reply: JSONValue, as type: Result.Type, method: String) throws -> Result {
    do { return try JSONCoding.convert(reply, to: type) } catch {
        throw RequestFailed(message: "\(method): the daemon's reply does not have the expected shape: \(error)")
    }
}

/// A request's work-done progress as the terminal's progress line: "[34%] title: message".
final class ProgressLine: @unchecked Sendable {
    private var title = ""

    func show(_ value: JSONValue) {
        switch value["kind"]?.stringValue {
        case "begin": title = value["title"]?.stringValue ?? ""
        case "end": return Terminal.progress(nil)
        default: break
        }
        var text = title
        if let message = value["message"]?.stringValue, !message.isEmpty { text += text.isEmpty ? message : ": " + message }
        if let percentage = value["percentage"]?.intValue { text = "[\(percentage)%] " + text }
        Terminal.progress(text)
    }
}

/// A command-line path as the daemon needs it: absolute (the daemon may run in another directory).
func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }

/// Parses a command-line JSON argument, as a usage error if it is not JSON.
func parseJSONArgument(_ text: String, name: String) throws -> JSONValue {
    do { return try JSONCoding.decode(JSONValue.self, from: Data(text.utf8)) } catch {
        throw ValidationError("\(name) is not valid JSON: \(text)")
    }
}
