import Foundation
import VLMTensor
import VLMWire

/// What a handler gets besides its params: its identity, streaming, progress and cancellation.
public final class RequestContext: Sendable {
    public let id: RequestID
    public let method: String
    public let tokens: StreamingTokens
    let outbox: Outbox
    let configuration: DaemonConfiguration
    /// Set when the request is cancelled ($/cancelRequest, models/unload, shutdown); the engines poll
    /// it through `computeContext` once per step.
    public let cancellation = CancellationToken()
    /// What the request's computations run with: the daemon's thread count when the request arrived
    /// (`--threads`, or `initialize.threads` since) and the request's cancellation token.
    public let computeContext: ComputeContext
    /// Ids of the loaded models this request took from the registry (models/unload waits for it).
    let modelsInUse = Mutex<Set<String>>([])

    /// The request the current task serves (set by the daemon around each handler).
    @TaskLocal static var current: RequestContext?

    init(id: RequestID, method: String, tokens: StreamingTokens, outbox: Outbox, configuration: DaemonConfiguration,
         threads: Int) {
        computeContext = ComputeContext(threads: threads, cancellation: cancellation)
        self.id = id
        self.method = method
        self.tokens = tokens
        self.outbox = outbox
        self.configuration = configuration
    }

    /// Sends one incremental result (LSP partial result: `$/progress` on the client's partialResultToken).
    /// Dropped when the client gave no token. Never throttled: partial results are data, not status.
    public func sendPartial<Value: Encodable & Sendable>(_ value: Value) async {
        guard let token = tokens.partialResultToken else { return }
        await outbox.notify(Method.progress, ProgressParams(token: token, value: value))
    }

    /// `sendPartial` for code running on a compute thread: blocks that thread until the message is
    /// written, so streaming from a compute loop keeps its order and the client's pace.
    public func sendPartialFromComputeThread<Value: Encodable & Sendable>(_ value: Value) {
        let written = DispatchSemaphore(value: 0)
        Task {
            await sendPartial(value)
            written.signal()
        }
        written.wait()
    }

    /// Starts work-done progress on the client's workDoneToken (a no-op reporter when there is none).
    public func beginProgress(title: String, message: String? = nil, cancellable: Bool = true) async -> ProgressReporter {
        let reporter = ProgressReporter(token: tokens.workDoneToken, outbox: outbox, interval: configuration.progressInterval)
        await reporter.begin(title: title, message: message, cancellable: cancellable)
        return reporter
    }

    public func log(_ level: LogLevel, _ message: String) { outbox.log(level, message) }

    /// Throws `ComputeCancelled` if the request was cancelled (CancellationError if its task was).
    public func checkCancellation() throws {
        try computeContext.checkCancellation()
        try Task.checkCancellation()
    }

    /// Runs CPU-bound work on a worker thread, off Swift's cooperative pool (which has one thread per
    /// core: a blocking forward pass there would stall every other request). The body gets the
    /// request's `computeContext` to pass down to the engines, which poll it between steps and throw
    /// `ComputeCancelled` when they notice.
    public func compute<T: Sendable>(_ body: @escaping @Sendable (ComputeContext) throws -> T) async throws -> T {
        try await ComputeThreads.run(computeContext, body)
    }
}

/// Where request handlers run. Swift's cooperative pool has one thread per core; a handler that
/// decodes a large image, tokenizes megabytes or encodes a large result blocks its thread for that
/// long, and two of them on a two-core machine left `ping` waiting seconds. Handler tasks prefer this
/// executor instead, so the message loop, the actors and cheap requests keep the cooperative pool
/// to themselves. Each job goes to a fresh serial dispatch queue: those target libdispatch's
/// overcommitting root queue, which starts another thread when the others are blocked (a shared
/// concurrent queue would be capped at one thread per core, and compute work queues there too).
final class RequestExecutor: TaskExecutor {
    static let shared = RequestExecutor()

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        DispatchQueue(label: "vlmd.request").async { job.runSynchronously(on: executor) }
    }
}

enum ComputeThreads {
    private static let queue = DispatchQueue(label: "vlmd.compute", attributes: .concurrent)

    static func run<T: Sendable>(_ compute: ComputeContext, _ body: @escaping @Sendable (ComputeContext) throws -> T) async throws -> T {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
                queue.async {
                    continuation.resume(with: Result { try body(compute) })
                }
            }
        } onCancel: {
            compute.cancellation.cancel()
        }
    }
}

/// LSP work-done progress for one token, throttled so a fast loop cannot flood the pipe:
/// `report` sends at most once per interval (the latest state wins); `begin` and `end` always go out.
public actor ProgressReporter {
    let token: RequestID?
    let outbox: Outbox
    let interval: Duration
    private var lastSent: ContinuousClock.Instant?
    private var ended = false

    init(token: RequestID?, outbox: Outbox, interval: Duration) {
        self.token = token
        self.outbox = outbox
        self.interval = interval
    }

    func begin(title: String, message: String?, cancellable: Bool) async {
        guard let token else { return }
        lastSent = .now
        await outbox.notify(Method.progress, ProgressParams(
            token: token, value: WorkDoneProgress(kind: "begin", title: title, message: message, percentage: 0, cancellable: cancellable)))
    }

    /// `fraction` in 0...1.
    public func report(fraction: Double? = nil, message: String? = nil) async {
        guard let token, !ended else { return }
        let now = ContinuousClock.now
        if let lastSent, now - lastSent < interval { return }
        lastSent = now
        let percentage = fraction.map { Int((min(max($0, 0), 1) * 100).rounded(.down)) }
        await outbox.notify(Method.progress, ProgressParams(
            token: token, value: WorkDoneProgress(kind: "report", message: message, percentage: percentage)))
    }

    public func end(message: String? = nil) async {
        guard let token, !ended else { return }
        ended = true
        await outbox.notify(Method.progress, ProgressParams(token: token, value: WorkDoneProgress(kind: "end", message: message)))
    }
}
