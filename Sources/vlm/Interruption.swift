import Foundation
import VLMRPC
import VLMWire

/// Thrown once Ctrl-C has stopped the command; `vlm` then exits 130.
struct Interrupted: Error {}

/// Ctrl-C for the whole life of `vlm`, whatever it is doing: loading a model, streaming, between
/// two requests. The first SIGINT sends one `$/cancelRequest` for the request in flight (the
/// command then prints what the daemon returned so far); a SIGINT between requests stops the next
/// one from being sent. If the daemon has not answered within `grace` (a model load runs to its
/// end), or on a second Ctrl-C, vlm exits at once: a private daemon is killed with it; a shared one
/// (on a socket) is never touched, vlm only drops its connection, which cancels its requests there.
final class Interruption: @unchecked Sendable {
    static let shared = Interruption()
    static let grace: DispatchTimeInterval = .milliseconds(700)

    private let lock = NSLock()
    private var source: DispatchSourceSignal?
    // Guarded by `lock`:
    private var interrupted = false
    private var exiting = false
    private var client: RPCClient?
    private var inFlight: RequestID?

    /// Takes SIGINT over from the default disposition (which would kill vlm and lose the reply).
    func install() {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [self] in interrupt() }
        source.resume()
        self.source = source
    }

    /// For a command that runs a child in the foreground instead of a daemon (models fetch): Ctrl-C
    /// ends both at once, the ordinary way.
    func restoreDefault() {
        source?.cancel()
        signal(SIGINT, SIG_DFL)
    }

    var isInterrupted: Bool { lock.withLock { interrupted } }

    /// The daemon of this run: cancelled requests go to it, and it is ended on a hard stop.
    func attach(_ client: RPCClient) { lock.withLock { self.client = client } }

    /// Marks `id` as the request Ctrl-C cancels; throws `Interrupted` if Ctrl-C came already.
    func begin(_ id: RequestID) throws {
        try lock.withLock {
            if interrupted { throw Interrupted() }
            inFlight = id
        }
    }

    func end(_ id: RequestID) { lock.withLock { if inFlight == id { inFlight = nil } } }

    /// Shuts the daemon down (a shared one: this connection only), says so and exits 130 (what a shell reports for SIGINT).
    func exitCancelled() async -> Never {
        await claimExit()?.shutdown(deadline: .milliseconds(300))
        sayCancelledAndExit()
    }

    private func interrupt() {
        let (first, cancel) = lock.withLock { () -> (Bool, (RPCClient, RequestID)?) in
            defer { interrupted = true }
            guard !interrupted, let client, let inFlight else { return (!interrupted, nil) }
            return (true, (client, inFlight))
        }
        guard first else { exitNow() }
        if let (client, id) = cancel { Task { await client.cancel(id) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.grace) { [self] in exitNow() }
    }

    /// Exit without waiting for anything (a private daemon is killed; a shared one loses this connection).
    private func exitNow() -> Never {
        claimExit()?.abandon()
        sayCancelledAndExit()
    }

    private func sayCancelledAndExit() -> Never {
        Terminal.finishLine()
        Terminal.progress(nil)
        Terminal.note("vlm: cancelled", freshLine: true)
        exit(130)
    }

    /// The first caller gets to exit (and the client, if any); later callers wait for the exit.
    private func claimExit() -> RPCClient? {
        let (won, client) = lock.withLock { () -> (Bool, RPCClient?) in
            defer { exiting = true }
            return (!exiting, self.client)
        }
        if !won { while true { sleep(60) } }
        return client
    }
}
