import ArgumentParser
import Foundation

/// `vlm`: the command-line client. It uses the shared `vlmd` of `vlm daemon start` when one is up
/// (or the socket in --socket / $VLMD_SOCKET), else starts a private `vlmd` as a subprocess (or the one given with
/// --daemon), sends the requests a subcommand needs (model loads, then the work), shows progress on
/// stderr and prints results as they stream (Terminal), and turns Ctrl-C into a cancellation
/// (Interruption). Exit codes: 0 ok, 1 a request failed, 2 usage error, 130 interrupted.
@main
struct VLM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vlm",
        abstract: "Command-line client for the vlmd vision-language model daemon.",
        discussion: "Exit codes: 0 ok, 1 a request failed, 2 usage error, 130 interrupted (Ctrl-C).",
        subcommands: [DaemonControl.self, Ping.self, Status.self, Call.self, Models.self, EncodeImage.self, EncodeText.self, Classify.self, Attribute.self, Evaluate.self, Generate.self, OptimisePrompt.self, TrainSelector.self, EvaluateSelector.self, DistilSelector.self])

    static func main() async {
        Interruption.shared.install()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let code as ExitCode where code != .success && code != .validationFailure {
            Foundation.exit(code.rawValue)  // a command's own exit status (vlm daemon status: 3, not running)
        } catch is Interrupted {
            await Interruption.shared.exitCancelled()
        } catch let error as ValidationError {
            // Thrown while running (say, --daemon names no file): no usage text, just the problem.
            Terminal.note("vlm: \(error.message)")
            Foundation.exit(2)
        } catch let error as RequestFailed {
            if Interruption.shared.isInterrupted { await Interruption.shared.exitCancelled() }
            Terminal.finishLine()
            Terminal.note("vlm: \(error.message)")
            Foundation.exit(1)
        } catch {
            if Interruption.shared.isInterrupted { await Interruption.shared.exitCancelled() }
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            // Help (--help, `vlm help X`, a command group run bare) is a clean exit whose message is the text.
            if code == .success {
                if !message.isEmpty { Terminal.line(message) }
                Foundation.exit(0)
            }
            // Usage errors (bad flags, validation) exit 2.
            if !message.isEmpty { Terminal.note(message) }
            Foundation.exit(code == .failure ? 1 : 2)
        }
        // A request that completed although Ctrl-C came during it: its output stands, the run was cut short.
        if Interruption.shared.isInterrupted { await Interruption.shared.exitCancelled() }
    }
}

struct RequestFailed: Error {
    let message: String
}
