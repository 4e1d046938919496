import ArgumentParser
import Foundation
import VLMDaemon
import VLMMCP
import VLMRPC

/// `vlmd`: serves vision-language models over JSON-RPC 2.0 with LSP framing on stdin/stdout.
/// Everything on stdout is protocol; logs go to stderr.
@main
struct VLMDCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vlmd",
        abstract: "Vision-language model daemon: JSON-RPC 2.0 with LSP framing on stdin/stdout (or MCP with --mcp).",
        discussion: "Start it as a subprocess and speak the protocol in protocol/README.md on its stdin/stdout.")

    @Option(help: "Largest accepted message body in bytes; larger messages are skipped and answered with -32600.")
    var maxMessageBytes = DaemonConfiguration().maxMessageBytes

    @Option(help: "Largest accepted image in pixels (width x height), checked before decoding.")
    var maxImagePixels = DaemonConfiguration().maxImagePixels

    @Option(help: "Memory budget for resident models, in MiB.")
    var memoryBudgetMib = DaemonConfiguration().memoryBudgetBytes >> 20

    @Option(help: "Memory budget for the image-embedding cache, in MiB.")
    var imageCacheMib = DaemonConfiguration().imageCacheBytes >> 20

    @Option(help: "Compute threads (OpenBLAS and vlmd's kernels). Default: one per core.")
    var threads = DaemonConfiguration().threads

    @Option(help: "Directory for learned prompts (optimise-prompt saveAs, classify learnedPrompt). Default: $VLMD_PROMPTS_DIR or ~/.cache/vlmd/prompts.")
    var promptsDir: String?

    @Option(help: "Lowest log level written to stderr: debug, info, warning, error, off.")
    var logLevel = "info"

    @Flag(help: "Speak the Model Context Protocol instead (newline-delimited JSON-RPC on stdin/stdout; protocol/mcp.md).")
    var mcp = false

    func validate() throws {
        reserveStandardDescriptors()
        guard maxMessageBytes >= 1024 else { throw ValidationError("--max-message-bytes must be at least 1024") }
        guard maxImagePixels >= 1 else { throw ValidationError("--max-image-pixels must be positive") }
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be in 1...256") }
        guard LogLevel(name: logLevel) != nil else { throw ValidationError("--log-level must be debug, info, warning, error or off") }
    }

    func run() async throws {
        var config = DaemonConfiguration()
        config.maxMessageBytes = maxMessageBytes
        config.maxImagePixels = maxImagePixels
        config.memoryBudgetBytes = memoryBudgetMib << 20
        config.imageCacheBytes = imageCacheMib << 20
        config.threads = threads
        if let promptsDir { config.promptsDirectory = URL(fileURLWithPath: promptsDir) }
        config.stderrLogLevel = LogLevel(name: logLevel) ?? .info

        let writer = FrameWriter(fileDescriptor: STDOUT_FILENO, framing: mcp ? lineFrame : frame)
        let onExit: @Sendable (Int32) -> Void = { code in
            writer.flush()
            LogWriter.standardError.drain()
            Foundation.exit(code)
        }
        let mcpServer = mcp ? MCPServer(configuration: config, output: writer, onExit: onExit) : nil
        let daemon = mcpServer?.daemon ?? Daemon(configuration: config, sink: writer, onExit: onExit)
        let signals = TerminationSignals { signal in
            await daemon.terminate(reason: "received \(signalName(signal))")
            writer.flush()
            LogWriter.standardError.drain()
        }
        if let mcpServer {
            await mcpServer.run(lines: FrameReader(fileDescriptor: STDIN_FILENO, decoder: LineDecoder(maxMessageBytes: maxMessageBytes)).events)
        } else {
            await daemon.run(events: FrameReader(fileDescriptor: STDIN_FILENO, maxMessageBytes: maxMessageBytes).events)
        }
        withExtendedLifetime(signals) {}
    }
}

/// SIGTERM, SIGHUP and SIGINT end the daemon cleanly: every request in flight is cancelled and gets
/// its reply, then the process dies of the same signal (so its parent sees how it ended). A second
/// signal while that is under way ends it at once.
final class TerminationSignals: @unchecked Sendable {  // the sources are only kept alive, never touched again
    private let sources: [any DispatchSourceSignal]

    init(cleanUp: @escaping @Sendable (Int32) async -> Void) {
        let started = Mutex(false)
        sources = [SIGTERM, SIGHUP, SIGINT].map { number in
            signal(number, SIG_IGN)  // delivered to the dispatch source instead of killing the process
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let isFirst = started.withLock { first in defer { first = true }; return !first }
                guard isFirst else { Self.die(of: number) }
                Task {
                    await cleanUp(number)
                    Self.die(of: number)
                }
            }
            source.resume()
            return source
        }
    }

    private static func die(of number: Int32) -> Never {
        signal(number, SIG_DFL)
        var unblocked = sigset_t()  // dispatch threads block the signals their sources watch
        sigemptyset(&unblocked)
        sigaddset(&unblocked, number)
        pthread_sigmask(SIG_UNBLOCK, &unblocked, nil)
        raise(number)
        Foundation.exit(128 + number)  // not reached: the default action of these signals ends the process
    }
}

private func signalName(_ number: Int32) -> String {
    switch number {
    case SIGTERM: return "SIGTERM"
    case SIGHUP: return "SIGHUP"
    case SIGINT: return "SIGINT"
    default: return "signal \(number)"
    }
}
