import ArgumentParser
import Foundation
import VLMRPC
import VLMWire

/// `vlm daemon start|stop|status`: a shared vlmd on a Unix socket, so models stay resident from one
/// vlm command to the next. Commands find it on their own (see DaemonOptions.socket).
struct DaemonControl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Start, stop or inspect a shared vlmd that keeps models loaded across vlm commands.",
        discussion: """
            The socket is --socket, else $VLMD_SOCKET, else $XDG_RUNTIME_DIR/vlmd/vlmd.sock, else \
            ~/.cache/vlmd/run/vlmd.sock; its directory is private (0700) and holds the daemon's log, vlmd.log.
            """,
        subcommands: [Start.self, Stop.self, Show.self])

    struct Location: ParsableArguments {
        @Option(help: "The daemon's Unix socket.")
        var socket: String?

        var path: String { socket ?? UnixSocket.defaultPath() }
        var logPath: String { ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("vlmd.log") }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a shared vlmd in the background and wait until it answers.")

        @OptionGroup var location: Location

        @Option(help: "Path of the vlmd executable (default: next to vlm, then $PATH).")
        var daemon: String?

        @Option(help: "Compute threads for the daemon.")
        var threads: Int?

        @Option(help: "Memory budget for resident models, in MiB.")
        var memoryBudgetMib: Int?

        @Option(help: "Seconds to wait for the daemon to answer.")
        var timeout = 60.0

        func run() async throws {
            let path = location.path
            if UnixSocket.connect(path: path).map({ close($0) }) != nil {
                Terminal.line("vlmd is already running on \(path)")
                return
            }
            try UnixSocket.ensurePrivateDirectory((path as NSString).deletingLastPathComponent)
            var daemonOptions = try DaemonOptions.parse(daemon.map { ["--daemon", $0] } ?? [])
            daemonOptions.quiet = true
            var arguments = ["--socket", path]
            if let threads { arguments += ["--threads", String(threads)] }
            if let memoryBudgetMib { arguments += ["--memory-budget-mib", String(memoryBudgetMib)] }
            let pid = try launchDetachedDaemon(executable: try daemonOptions.daemonURL().path, arguments: arguments, logPath: location.logPath)
            try await waitUntilAnswering(path: path, pid: pid)
            Terminal.line("vlmd started on \(path) (pid \(pid)); log: \(location.logPath)")
        }

        /// Polls until an `initialize` + `ping` on the socket succeeds, or the daemon has died.
        private func waitUntilAnswering(path: String, pid: pid_t) async throws {
            let deadline = ContinuousClock.now + .seconds(timeout)
            while ContinuousClock.now < deadline {
                if let client = try? RPCClient(socketPath: path) {
                    let initialized = (try? await client.initialize(clientName: "vlm daemon start")) != nil
                    let answered = initialized ? (try? await client.send(PingRequest.self, PingParams())) != nil : false
                    await client.shutdown(deadline: .seconds(2))
                    if answered { return }
                }
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    throw RequestFailed(message: "vlmd exited before answering on \(path); see \(location.logPath):\n" + logTail())
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw RequestFailed(message: "vlmd (pid \(pid)) did not answer on \(path) within \(timeout) s; see \(location.logPath)")
        }

        private func logTail() -> String {
            let text = (try? String(contentsOfFile: location.logPath, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").suffix(5).joined(separator: "\n")
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop the shared vlmd (requests in flight are cancelled and answered first).")

        @OptionGroup var location: Location

        func run() async throws {
            let path = location.path
            guard let client = try? RPCClient(socketPath: path) else {
                Terminal.line("no vlmd is running on \(path)")
                return
            }
            do {
                _ = try await client.initialize(clientName: "vlm daemon stop")
                _ = try await client.send(StopRequest.self, NoParams())
            } catch {
                throw RequestFailed(message: "could not stop the daemon on \(path): \(error)")
            }
            // It removes its socket as it goes; wait for that so a `start` right after succeeds.
            let deadline = ContinuousClock.now + .seconds(30)
            while FileManager.default.fileExists(atPath: path), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            Terminal.line("vlmd on \(path) stopped")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Whether the shared vlmd is running and what it holds. Exit code 3 when it is not running.")

        @OptionGroup var location: Location

        @Flag(help: "daemon/status as JSON.")
        var json = false

        func run() async throws {
            let path = location.path
            guard let client = try? RPCClient(socketPath: path) else {
                Terminal.note("no vlmd is running on \(path)")
                throw ExitCode(3)
            }
            let status: StatusResult
            do {
                _ = try await client.initialize(clientName: "vlm daemon status")
                status = try await client.send(StatusRequest.self, NoParams())
            } catch {
                throw RequestFailed(message: "the daemon on \(path) did not answer: \(error)")
            }
            await client.shutdown(deadline: .seconds(2))
            if json { return Terminal.json(status) }
            Terminal.line("vlmd running on \(path)\n" + renderStatus(status))
        }
    }
}
