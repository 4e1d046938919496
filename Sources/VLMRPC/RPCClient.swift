import Foundation
import Synchronization
import VLMWire

/// A JSON-RPC client for `vlmd` (used by the `vlm` CLI and by tests): a private daemon it starts as
/// a subprocess and talks to over stdio, or a shared one it connects to on a Unix socket.
/// Replies are matched to requests by id; notifications go to the handler of the request whose
/// progress or partial-result token they carry.
public final class RPCClient: @unchecked Sendable {
    public typealias NotificationHandler = @Sendable (_ method: String, _ params: JSONValue) -> Void

    private enum Transport {
        /// Ours alone: we end it (shutdown/exit, and SIGKILL when it must go now).
        case privateDaemon(DaemonProcess)
        /// Shared with other clients: we only ever close our connection.
        case sharedDaemon(socket: Int32)
    }

    private let transport: Transport
    private let writer: FrameWriter
    private let reader: FrameReader
    private var readLoopTask: Task<Void, Never>?
    private let lock = NSLock()
    // Guarded by `lock`:
    private var nextID: Int64 = 1
    private var pending: [RequestID: CheckedContinuation<JSONValue, Error>] = [:]
    private var tokenHandlers: [RequestID: NotificationHandler] = [:]
    private var closed = false
    /// Notifications not tied to a request (window/logMessage, ...).
    public var onOtherNotification: NotificationHandler?

    public struct ResponseError: Error, CustomStringConvertible {
        public let error: RPCError
        public var description: String { "error \(error.code): \(error.message)" }
    }

    public struct DaemonExited: Error, CustomStringConvertible {
        public var description: String { "the daemon exited before replying" }
    }

    /// Starts `executable` with `arguments`; its stderr is passed through to ours. The daemon runs in
    /// its own process group, so a Ctrl-C at the terminal reaches only the client, which cancels
    /// requests and shuts the daemon down in order.
    public convenience init(executable: URL, arguments: [String] = []) throws {
        let process = try DaemonProcess(executable: executable.path, arguments: arguments)
        self.init(transport: .privateDaemon(process), input: process.input, output: process.output)
    }

    public struct NoDaemonListening: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "no vlmd is listening on \(path)" }
    }

    /// Connects to a daemon listening on a Unix socket (`vlmd --socket PATH`). It is shared: this
    /// client never ends it; closing the connection cancels only this client's requests there.
    public convenience init(socketPath: String) throws {
        guard let socket = UnixSocket.connect(path: socketPath) else { throw NoDaemonListening(path: socketPath) }
        self.init(transport: .sharedDaemon(socket: socket), input: socket, output: socket)
    }

    private init(transport: Transport, input: Int32, output: Int32) {
        self.transport = transport
        writer = FrameWriter(fileDescriptor: input)
        reader = FrameReader(fileDescriptor: output, maxMessageBytes: 1 << 30)
        readLoopTask = Task { [weak self] in await self?.readLoop() }
    }

    /// False when connected to a shared daemon on a socket.
    public var ownsDaemon: Bool {
        if case .privateDaemon = transport { return true }
        return false
    }

    private func readLoop() async {
        for await event in reader.events {
            guard case .message(let body) = event, let message = try? JSONCoding.decode(JSONValue.self, from: body) else { continue }
            if let method = message["method"]?.stringValue {
                let params = message["params"] ?? .null
                let handler = lock.withLock { params["token"].flatMap(RequestID.init).flatMap { tokenHandlers[$0] } }
                (handler ?? onOtherNotification)?(method, params)
            } else if let id = message["id"].flatMap(RequestID.init) {
                let continuation = lock.withLock { pending.removeValue(forKey: id) }
                if let error = message["error"], let rpc = try? JSONCoding.convert(error, to: RPCError.self) {
                    continuation?.resume(throwing: ResponseError(error: rpc))
                } else {
                    continuation?.resume(returning: message["result"] ?? .null)
                }
            }
        }
        let orphans = lock.withLock { () -> [CheckedContinuation<JSONValue, Error>] in
            closed = true
            defer { pending.removeAll() }
            return Array(pending.values)
        }
        for continuation in orphans { continuation.resume(throwing: DaemonExited()) }
    }

    /// Reserves the id the next request will use (so a caller can cancel it, e.g. on Ctrl-C).
    public func reserveID() -> RequestID {
        lock.withLock {
            defer { nextID += 1 }
            return .int(nextID)
        }
    }

    /// Sends a request and waits for its reply. When `onNotification` is given, the request carries
    /// `workDoneToken` and `partialResultToken` (both equal to its id) and notifications on them are
    /// delivered there.
    public func request(
        _ method: String, params: JSONValue = .object([:]), id: RequestID? = nil,
        onNotification: NotificationHandler? = nil
    ) async throws -> JSONValue {
        let id = id ?? reserveID()
        var params = params
        if let onNotification, case .object(var fields) = params {
            fields["workDoneToken"] = id.json
            fields["partialResultToken"] = id.json
            params = .object(fields)
            lock.withLock { tokenHandlers[id] = onNotification }
        }
        defer { lock.withLock { _ = tokenHandlers.removeValue(forKey: id) } }
        let body = try OutgoingMessage.request(id: id, method: method, params: params)
        return try await withCheckedThrowingContinuation { continuation in
            let isClosed = lock.withLock { () -> Bool in
                if closed { return true }
                pending[id] = continuation
                return false
            }
            if isClosed { continuation.resume(throwing: DaemonExited()); return }
            Task { await writer.send(body) }
        }
    }

    public func notify(_ method: String, params: JSONValue = .object([:])) async {
        guard let body = try? OutgoingMessage.notification(method: method, params: params) else { return }
        await writer.send(body)
    }

    public func cancel(_ id: RequestID) async {
        await notify(Method.cancelRequest, params: ["id": id.json])
    }

    /// `initialize` + `initialized`.
    public func initialize(clientName: String, options: JSONValue? = nil) async throws -> JSONValue {
        var params: [String: JSONValue] = [
            "processId": .int(Int64(ProcessInfo.processInfo.processIdentifier)),
            "clientInfo": ["name": .string(clientName), "version": .string(ProtocolVersion.current)],
            "capabilities": [:],
        ]
        if let options { params["initializationOptions"] = options }
        let result = try await request(InitializeRequest.method, params: .object(params))
        await notify(Method.initialized)
        return result
    }

    /// `shutdown` + `exit`, then waits for the process; returns its exit code. With a `deadline`,
    /// a daemon still running then (say, busy finishing a model load) is killed. On a shared daemon
    /// this ends only our connection (the daemon goes on) and returns 0.
    @discardableResult
    public func shutdown(deadline: Duration? = nil) async -> Int32 {
        guard case .privateDaemon(let daemon) = transport else {
            return await disconnect(deadline: deadline)
        }
        let stop = Task {
            _ = try? await request(ShutdownRequest.method, params: .null)
            await notify(Method.exit, params: .null)
            daemon.closeInput()  // end of input also ends a daemon that missed `exit`
        }
        if let deadline {
            let killer = Task {
                try await Task.sleep(for: deadline)
                daemon.terminateNow()
            }
            await stop.value
            let status = await daemon.waitForExit()
            killer.cancel()
            return status
        }
        await stop.value
        return await daemon.waitForExit()
    }

    /// `shutdown` + `exit` on our connection, then waits (up to `deadline`) for the daemon to close it.
    private func disconnect(deadline: Duration?) async -> Int32 {
        let polite = Task {
            _ = try? await request(ShutdownRequest.method, params: .null)
            await notify(Method.exit, params: .null)
            await readLoopTask?.value  // the daemon closes the connection after `exit`
        }
        let timer = Task {
            guard let deadline else { return }
            try await Task.sleep(for: deadline)
            abandon()  // ends the read loop, and with it `polite`
        }
        await polite.value
        timer.cancel()
        abandon()
        writer.close()
        return 0
    }

    /// For a client that must exit now. A private daemon is killed (SIGKILL); a shared one is never
    /// touched: the connection is dropped, and the daemon cancels this client's requests on its own.
    public func abandon() {
        switch transport {
        case .privateDaemon(let daemon): daemon.terminateNow()
        case .sharedDaemon(let socket): _ = Glibc.shutdown(socket, Int32(SHUT_RDWR))
        }
    }
}

/// A child process with pipes on its stdin and stdout, spawned in a process group of its own (so
/// signals from the terminal go to the client alone) with default signal dispositions (so what the
/// client ignores does not leak into the daemon).
final class DaemonProcess: Sendable {
    let pid: pid_t
    /// Our ends of its stdin and stdout.
    let input: Int32
    let output: Int32
    private let status = Mutex<Int32?>(nil)
    private let inputOpen = Mutex(true)

    struct LaunchFailed: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String { "cannot start \(path): \(reason)" }
    }

    init(executable: String, arguments: [String]) throws {
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else {
            throw LaunchFailed(path: executable, reason: String(cString: strerror(errno)))
        }
        // Only the dup2'd copies reach the child (dup2 clears close-on-exec on them).
        for descriptor in toChild + fromChild { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        let child: pid_t
        do {
            child = try spawnWithDefaultSignals(executable: executable, arguments: arguments, ownGroup: true) { actions in
                posix_spawn_file_actions_adddup2(&actions, toChild[0], STDIN_FILENO)
                posix_spawn_file_actions_adddup2(&actions, fromChild[1], STDOUT_FILENO)
            }
        } catch {
            for descriptor in toChild + fromChild { close(descriptor) }
            throw error
        }
        close(toChild[0])
        close(fromChild[1])
        pid = child
        input = toChild[1]
        output = fromChild[0]
    }

    func closeInput() {
        if inputOpen.withLock({ open in defer { open = false }; return open }) { close(input) }
    }

    func terminateNow() {
        if status.withLock({ $0 }) == nil { _ = kill(pid, SIGKILL) }
    }

    /// Waits for the process to end (polling, so a concurrent `kill` can interrupt a hung daemon);
    /// returns its exit code, or 128 + the signal that ended it.
    func waitForExit() async -> Int32 {
        while true {
            if let known = status.withLock({ $0 }) { return known }
            var raw: Int32 = 0
            let reaped = waitpid(pid, &raw, WNOHANG)
            if reaped == pid || (reaped < 0 && errno == ECHILD) {
                let code = reaped == pid ? Self.exitCode(raw) : -1
                status.withLock { $0 = code }
                closeInput()
                return code
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    private static func exitCode(_ raw: Int32) -> Int32 {
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : 128 + signal
    }
}

/// A daemon for `vlm daemon start`: detached in a session of its own (no terminal signals reach
/// it, it outlives the client), stdin and stdout on /dev/null, stderr appended to `logPath`.
public func launchDetachedDaemon(executable: String, arguments: [String], logPath: String) throws -> pid_t {
    try spawnWithDefaultSignals(executable: executable, arguments: arguments, ownGroup: false) { actions in
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
    }
}

/// posix_spawn with default dispositions for the signals a client may ignore or block (so they do
/// not leak into the daemon), in a process group of its own (`ownGroup`) or a new session.
private func spawnWithDefaultSignals(
    executable: String, arguments: [String], ownGroup: Bool,
    redirect: (inout posix_spawn_file_actions_t) -> Void
) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    redirect(&actions)

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var defaults = sigset_t(), empty = sigset_t()
    sigemptyset(&empty)
    sigemptyset(&defaults)
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
    if ownGroup {
        posix_spawnattr_setpgroup(&attributes, 0)
        flags |= POSIX_SPAWN_SETPGROUP
    } else {
        flags |= 0x80  // POSIX_SPAWN_SETSID (glibc 2.26+): a new session, no controlling terminal
    }
    posix_spawnattr_setflags(&attributes, Int16(flags))

    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var child: pid_t = 0
    let result = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
    guard result == 0 else { throw DaemonProcess.LaunchFailed(path: executable, reason: String(cString: strerror(result))) }
    return child
}
