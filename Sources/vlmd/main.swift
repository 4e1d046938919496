import ArgumentParser
import Foundation
import VLMDaemon
import VLMRPC

/// `vlmd`: serves vision-language models over JSON-RPC 2.0 with LSP framing on stdin/stdout.
/// Everything on stdout is protocol; logs go to stderr.
@main
struct VLMDCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vlmd",
        abstract: "Vision-language model daemon: JSON-RPC 2.0 with LSP framing on stdin/stdout.",
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

    func validate() throws {
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

        let writer = FrameWriter(fileDescriptor: STDOUT_FILENO)
        let reader = FrameReader(fileDescriptor: STDIN_FILENO, maxMessageBytes: maxMessageBytes)
        let daemon = Daemon(configuration: config, sink: writer) { code in
            writer.flush()
            Foundation.exit(code)
        }
        await daemon.run(events: reader.events)
    }
}
