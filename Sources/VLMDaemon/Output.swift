import Foundation
import VLMRPC
import VLMWire

/// Where the daemon's outgoing messages go: the stdout writer in production, a recorder in tests.
public protocol MessageSink: Sendable {
    /// Sends one message body; returns once it is written (back-pressure).
    func send(_ body: Data) async
}

extension FrameWriter: MessageSink {}

/// Sends notifications and logs on behalf of every part of the daemon.
public final class Outbox: Sendable {
    let sink: any MessageSink
    let stderr: LogWriter
    private let state: Mutex<State>

    private struct State {
        var clientLogLevel: LogLevel = .off
        var stderrLogLevel: LogLevel
        var trace = "off"
    }

    init(sink: any MessageSink, stderrLogLevel: LogLevel, stderr: LogWriter = .standardError) {
        self.sink = sink
        self.stderr = stderr
        state = Mutex(State(stderrLogLevel: stderrLogLevel))
    }

    func setClientLogLevel(_ level: LogLevel) { state.withLock { $0.clientLogLevel = level } }
    func setTrace(_ value: String) { state.withLock { $0.trace = value } }
    var trace: String { state.withLock { $0.trace } }

    func notify<P: Encodable & Sendable>(_ method: String, _ params: P) async {
        do { await sink.send(try OutgoingMessage.notification(method: method, params: params)) } catch {
            log(.error, "could not encode '\(method)' notification: \(error)", toClient: false)
        }
    }

    /// Logs to stderr (never stdout: that is the protocol channel) and, when the client asked for
    /// it in `initialize`, as a `window/logMessage` notification.
    func log(_ level: LogLevel, _ message: String, toClient: Bool = true) {
        let (stderrLevel, clientLevel) = state.withLock { ($0.stderrLogLevel, $0.clientLogLevel) }
        if level >= stderrLevel {
            stderr.write("vlmd [\(level)] \(message)")
        }
        if toClient, clientLevel != .off, level >= clientLevel {
            Task { await notify(Method.logMessage, LogMessageParams(type: level.lspMessageType, message: message)) }
        }
    }

    func traceMessage(_ message: String, verbose: String? = nil) async {
        let trace = self.trace
        guard trace != "off" else { return }
        await notify(Method.logTrace, LogTraceParams(message: message, verbose: trace == "verbose" ? verbose : nil))
    }
}

/// A lock-protected box with reference semantics, for state shared by the closures and tasks that
/// capture it (Synchronization.Mutex, used in VLMRPC, is a non-copyable value: escaping closures
/// cannot capture it).
public final class Mutex<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    public init(_ value: Value) { self.value = value }

    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
