import ArgumentParser
import Foundation
import VLMRPC
import VLMWire

/// Options every subcommand shares: how to reach the daemon and how to print.
struct DaemonOptions: ParsableArguments {
    @Option(help: "Path of the vlmd executable (default: next to vlm, then $PATH).")
    var daemon: String?

    @Option(help: "Compute threads for the daemon.")
    var threads: Int?

    @Flag(help: "Machine-readable output: JSON lines (one per streamed event, then the result).")
    var json = false

    @Flag(help: "Do not show progress on stderr.")
    var quiet = false

    func daemonURL() throws -> URL {
        if let daemon { return URL(fileURLWithPath: daemon) }
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("vlmd")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent("vlmd")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw ValidationError("cannot find vlmd next to vlm or on PATH; pass --daemon PATH")
    }
}

/// One daemon session: start, initialize, run requests, shut down. Ctrl-C cancels the running
/// request with $/cancelRequest and waits for its reply before exiting.
final class Session: @unchecked Sendable {
    let client: RPCClient
    let options: DaemonOptions
    private var interrupt: DispatchSourceSignal?

    private init(client: RPCClient, options: DaemonOptions) {
        self.client = client
        self.options = options
    }

    static func start(_ options: DaemonOptions) async throws -> Session {
        let client = try RPCClient(executable: try options.daemonURL(), arguments: ["--log-level", "warning"])
        let session = Session(client: client, options: options)
        var initOptions: [String: JSONValue] = [:]
        if let threads = options.threads { initOptions["threads"] = .int(Int64(threads)) }
        do { _ = try await client.initialize(clientName: "vlm", options: .object(initOptions)) } catch {
            throw RequestFailed(message: "could not start the daemon: \(error)")
        }
        return session
    }

    /// Sends a request, rendering its progress and streamed partial results as they arrive.
    func run(_ method: String, params: JSONValue, onPartial: (@Sendable (JSONValue) -> Void)? = nil) async throws -> JSONValue {
        let id = client.reserveID()
        installInterrupt(cancelling: id)
        defer { interrupt?.cancel(); interrupt = nil }
        let json = options.json, quiet = options.quiet
        do {
            return try await client.request(method, params: params, id: id) { _, notification in
                let value = notification["value"] ?? .null
                if value["kind"] != nil, value["partial"] == nil {
                    if !quiet { renderProgress(value) }
                } else if let onPartial {
                    onPartial(value)
                } else if json {
                    printJSON(value)
                }
            }
        } catch let error as RPCClient.ResponseError {
            if !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
            throw RequestFailed(message: "\(method) failed: \(error.error.message) (code \(error.error.code))")
        }
    }

    func close() async {
        await client.shutdown()
    }

    private func installInterrupt(cancelling id: RequestID) {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT)
        source.setEventHandler { [client] in
            FileHandle.standardError.write(Data("\nvlm: cancelling…\n".utf8))
            Task { await client.cancel(id) }
        }
        source.resume()
        interrupt = source
    }
}

/// Progress on stderr: one line, rewritten in place (only on a terminal; logs stay clean).
func renderProgress(_ value: JSONValue) {
    guard isatty(STDERR_FILENO) != 0 else { return }
    let kind = value["kind"]?.stringValue ?? ""
    var text = value["title"]?.stringValue ?? value["message"]?.stringValue ?? ""
    if let percentage = value["percentage"]?.intValue { text = "[\(percentage)%] " + text }
    let end = kind == "end" ? "\n" : ""
    FileHandle.standardError.write(Data("\r\u{1B}[2K\(text)\(end)".utf8))
}

func printJSON(_ value: JSONValue) {
    if let data = try? JSONCoding.encode(value), let line = String(data: data, encoding: .utf8) { print(line) }
}

/// A command-line path as the daemon needs it: absolute (the daemon may run in another directory).
func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }

/// Parses a command-line JSON argument, as a usage error if it is not JSON.
func parseJSONArgument(_ text: String, name: String) throws -> JSONValue {
    do { return try JSONCoding.decode(JSONValue.self, from: Data(text.utf8)) } catch {
        throw ValidationError("\(name) is not valid JSON: \(text)")
    }
}
