import Dispatch
import VLMTensor

/// Runs a request's steps as a two-stage pipeline: while step i is processed (an image tower's
/// forward pass), step i + 1 is staged (its images read, decoded and preprocessed) on another thread.
/// Both run on compute threads (`RequestContext.compute`) with the request's `compute` context.
///
/// One step ahead and no more, so memory holds at most two steps' inputs. Both stages of a step
/// finish before the next begins: nothing outlives the request's reply, and cancellation reaches both
/// through the one ComputeContext. What the client sees is what running the steps one after the other
/// gives: each step's `deliver` runs in order, before anything of a later step is observed, and an
/// error staging step i + 1 surfaces only after step i has been delivered (an earlier step's error
/// wins when both fail).
///
/// The tower keeps every thread of the context while the stager runs beside it: staging is the small
/// part of a step, so a thread taken from the tower for the whole step would idle once staging is
/// done; giving the tower one thread fewer was not faster when measured (BENCHMARKS.md, `vlm evaluate`).
func runStagedSteps<Staged: Sendable, Output: Sendable>(
    count: Int, compute: ComputeContext,
    stage: @escaping @Sendable (Int, ComputeContext) throws -> Staged,
    process: @escaping @Sendable (Staged, ComputeContext) throws -> Output,
    deliver: (Int, Output) async throws -> Void
) async throws {
    guard count > 0 else { return }
    var staged = try await ComputeThreads.run(compute) { try stage(0, $0) }
    for step in 0..<count {
        let current = staged
        let nextStep = step + 1 < count ? step + 1 : nil
        let (output, next) = try await ComputeThreads.run(compute) { compute in
            try compute.checkCancellation()
            let (output, next) = concurrently({ try process(current, compute) },
                                              alongside: nextStep.map { next in { try stage(next, compute) } })
            return (try output.get(), next)
        }
        try await deliver(step, output)
        if let next { staged = try next.get() }
    }
}

/// Runs `body` on the calling thread and `other` (when given) on a thread of its own, and returns when
/// both have finished, with both outcomes.
private func concurrently<Body, Other: Sendable>(
    _ body: () throws -> Body, alongside other: (@Sendable () throws -> Other)?
) -> (Result<Body, any Error>, Result<Other, any Error>?) {
    guard let other else { return (Result(catching: body), nil) }
    let outcome = OneShot<Result<Other, any Error>>()
    let done = DispatchGroup()
    stagingQueue.async(group: done) { outcome.set(Result(catching: other)) }
    let result = Result(catching: body)
    done.wait()
    return (result, outcome.value)
}

/// A queue of its own (libdispatch gives it a thread even when the global pool's are all busy in the
/// tower's parallel loops, so staging never waits for the step it overlaps).
private let stagingQueue = DispatchQueue(label: "vlmd.staging", attributes: .concurrent)

/// A value written once by one thread and read by another after a DispatchGroup wait (which orders
/// the write before the read).
private final class OneShot<Value: Sendable>: @unchecked Sendable {
    private(set) var value: Value?
    func set(_ newValue: Value) { value = newValue }
}
