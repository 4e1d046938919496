import COpenBLAS
import Dispatch
import Foundation
import Synchronization

/// What one computation runs with: how many threads it may use and whether it has been cancelled.
///
/// It is passed down explicitly, from the daemon's request (or a test, or a benchmark) to the
/// innermost kernel, so nothing computes with a thread count or a cancellation flag of its own: a
/// model loaded before `initialize.threads` changed uses the new count on its next request, and
/// one `$/cancelRequest` stops every engine the same way. OpenBLAS is the exception: its thread
/// pool is process-wide by nature, so `ComputeContext.setBLASThreads` is the one place that sets it.
public struct ComputeContext: Sendable {
    /// Worker threads for vlmd's own kernels (the caller's thread included), at least 1.
    public let threads: Int
    public let cancellation: CancellationToken

    public init(threads: Int = ComputeContext.processorCount, cancellation: CancellationToken = CancellationToken()) {
        self.threads = max(1, threads)
        self.cancellation = cancellation
    }

    public static var processorCount: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    public var isCancelled: Bool { cancellation.isCancelled }

    /// Throws `ComputeCancelled` once the token is cancelled. Engines call it between steps.
    public func checkCancellation() throws {
        if cancellation.isCancelled { throw ComputeCancelled() }
    }

    /// The same threads with a token that is never cancelled, for work that must finish once started
    /// (a judge's scoring pass, the initial pool of a search).
    public var uncancellable: ComputeContext { ComputeContext(threads: threads) }

    /// The same token with another thread count.
    public func with(threads: Int) -> ComputeContext { ComputeContext(threads: threads, cancellation: cancellation) }

    /// OpenBLAS keeps one thread pool for the whole process, so its count cannot travel with a
    /// context; the daemon (and the benchmarks) set it here, the only caller of
    /// `openblas_set_num_threads`, whenever their thread count changes.
    public static func setBLASThreads(_ count: Int) { openblas_set_num_threads(Int32(max(1, count))) }

    /// Splits 0..<count into `parts` contiguous ranges (default: one per thread; fewer when a part
    /// would hold less than `minimumPartSize` items) and runs `body` on each. The ranges are handed
    /// out one at a time to at most `threads` workers, the calling thread among them (the others are a
    /// `WorkerPool`'s helpers, kept between loops), so more parts than threads balance uneven work and
    /// a core busy elsewhere does not hold the others up.
    /// One part (or one thread) runs inline as `body(0..<count)`. `body` must only write memory that
    /// is disjoint for disjoint ranges.
    public func parallelFor(_ count: Int, parts: Int? = nil, minimumPartSize: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let parts = max(1, min(parts ?? threads, count / max(minimumPartSize, 1)))
        let workers = min(threads, parts)
        guard workers > 1 else { return body(0..<count) }
        withoutActuallyEscaping(body) { body in
            // The pool returns only after every helper has finished the loop, so sharing the closure
            // (and the pointers it captured) with the helpers is safe.
            WorkerPools.withPool(helpers: workers - 1) { $0.run(count, parts: parts, SharedBody(body)) }
        }
    }
}

/// The one error a cancelled computation throws, in every engine. `partial` is what the computation
/// had produced when it stopped, for the engines that return a best-so-far result on cancellation
/// (prompt learning's best prompt, reasoning's transcript so far); nil for the others.
public struct ComputeCancelled: Error, CustomStringConvertible {
    public let partial: (any Sendable)?
    public init(partial: (any Sendable)? = nil) { self.partial = partial }
    public var description: String { "cancelled" }
}

/// A cancellation flag that any thread may set and poll (a request's `$/cancelRequest`, a test).
public final class CancellationToken: Sendable {
    private let flag = Atomic<Bool>(false)
    private let pollCount = Atomic<Int>(0)
    /// The poll that cancels the token by itself (Int.max: none).
    private let cancellingPoll: Int

    public init() { cancellingPoll = .max }

    /// A token that cancels itself at its `poll`-th poll (1 = the first). Tests use it to stop a
    /// computation at an exact step, e.g. between two layers of one forward pass.
    public init(cancellingAtPoll poll: Int) { cancellingPoll = max(1, poll) }

    public func cancel() { flag.store(true, ordering: .releasing) }

    /// Engines poll this between steps (a layer, a token, an optimiser step); each read is one poll.
    public var isCancelled: Bool {
        let poll = pollCount.add(1, ordering: .relaxed).newValue
        if poll >= cancellingPoll { cancel() }
        return flag.load(ordering: .acquiring)
    }

    /// How many times `isCancelled` has been read: a test's evidence that a computation polls.
    public var polls: Int { pollCount.load(ordering: .relaxed) }
}
