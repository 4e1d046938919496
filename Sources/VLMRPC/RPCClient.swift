import Foundation
import VLMWire

/// A JSON-RPC client for a `vlmd` subprocess (used by the `vlm` CLI and by tests).
/// Replies are matched to requests by id; notifications go to the handler of the request whose
/// progress or partial-result token they carry.
public final class RPCClient: @unchecked Sendable {
    public typealias NotificationHandler = @Sendable (_ method: String, _ params: JSONValue) -> Void

    private let process: Process
    private let writer: FrameWriter
    private let reader: FrameReader
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

    /// Starts `executable` with `arguments`; its stderr is passed through to ours.
    public init(executable: URL, arguments: [String] = []) throws {
        process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.standardError
        try process.run()
        writer = FrameWriter(fileDescriptor: stdin.fileHandleForWriting.fileDescriptor)
        reader = FrameReader(fileDescriptor: stdout.fileHandleForReading.fileDescriptor, maxMessageBytes: 1 << 30)
        Task { [weak self] in await self?.readLoop() }
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
        let result = try await request(Method.initialize, params: .object(params))
        await notify(Method.initialized)
        return result
    }

    /// `shutdown` + `exit`, then waits for the process; returns its exit code.
    @discardableResult
    public func shutdown() async -> Int32 {
        _ = try? await request(Method.shutdown, params: .null)
        await notify(Method.exit, params: .null)
        process.waitUntilExit()
        return process.terminationStatus
    }
}
