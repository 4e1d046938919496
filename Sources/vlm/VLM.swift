import ArgumentParser
import Foundation

/// `vlm`: the command-line client. It starts `vlmd` as a subprocess (or the one given with
/// --daemon), sends one request per invocation, streams progress to stderr and prints the result.
/// Exit codes: 0 ok, 1 the request failed, 2 usage error.
@main
struct VLM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vlm",
        abstract: "Command-line client for the vlmd vision-language model daemon.",
        subcommands: [Ping.self, Status.self, Call.self, Models.self, EncodeImage.self, Classify.self, Evaluate.self, Generate.self, OptimisePrompt.self])

    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as RequestFailed {
            FileHandle.standardError.write(Data("vlm: \(error.message)\n".utf8))
            Foundation.exit(1)
        } catch {
            let code = exitCode(for: error)
            if code == .success { Foundation.exit(0) }
            // Usage errors (bad flags, validation) exit 2; the parser prints its own message.
            let message = fullMessage(for: error)
            if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
            Foundation.exit(code == .failure ? 1 : 2)
        }
    }
}

struct RequestFailed: Error {
    let message: String
}
