import Foundation
import Synchronization
import Testing
import VLMTensor

/// The one compute context: its parallel-for splits work exactly and stays within its thread count,
/// and its token is the one cancellation every engine throws for.
@Suite struct ComputeContextTests {
    /// Every index is covered by exactly one range, ranges are contiguous, and a part never holds
    /// fewer than `minimumPartSize` items when there are several parts.
    @Test(arguments: [(0, 1, nil as Int?, 1), (1, 2, nil, 1), (7, 2, nil, 1), (1000, 2, nil, 1), (1000, 3, 48, 1),
                      (1000, 4, nil, 300), (10, 8, 100, 1), (5000, 2, nil, 4096)])
    func rangesCoverEveryIndexOnce(count: Int, threads: Int, parts: Int?, minimumPartSize: Int) {
        let seen = Mutex<[Range<Int>]>([])
        ComputeContext(threads: threads).parallelFor(count, parts: parts, minimumPartSize: minimumPartSize) { range in
            seen.withLock { $0.append(range) }
        }
        let ranges = seen.withLock { $0 }.sorted { $0.lowerBound < $1.lowerBound }
        #expect(ranges.flatMap { Array($0) } == Array(0..<count))
        if ranges.count > 1 { #expect(ranges.allSatisfy { $0.count >= minimumPartSize }) }
        #expect(ranges.count <= max(1, parts ?? threads))
    }

    /// At most `threads` bodies run at once (each part waits long enough for the others to start),
    /// and one thread runs everything inline, as one call on the caller's thread.
    @Test(arguments: [1, 2, 3])
    func neverMoreWorkersThanThreads(threads: Int) {
        let running = Atomic<Int>(0), most = Atomic<Int>(0)
        let caller = pthread_self()
        let onCaller = Atomic<Int>(0)
        ComputeContext(threads: threads).parallelFor(24, parts: 24) { _ in
            let now = running.add(1, ordering: .relaxed).newValue
            _ = most.max(now, ordering: .relaxed)
            if pthread_equal(pthread_self(), caller) != 0 { _ = onCaller.add(1, ordering: .relaxed) }
            usleep(2000)
            _ = running.subtract(1, ordering: .relaxed)
        }
        #expect(most.load(ordering: .relaxed) <= threads)
        if threads == 1 { #expect(onCaller.load(ordering: .relaxed) == 1) }
    }

    @Test func cancellationIsOneErrorAndOneToken() {
        let token = CancellationToken()
        let context = ComputeContext(threads: 3, cancellation: token)
        #expect(throws: Never.self) { try context.checkCancellation() }
        token.cancel()
        #expect(throws: ComputeCancelled.self) { try context.checkCancellation() }
        // Another thread count shares the token; `uncancellable` keeps the threads, not the token.
        #expect(throws: ComputeCancelled.self) { try context.with(threads: 1).checkCancellation() }
        #expect(context.with(threads: 1).threads == 1)
        #expect(throws: Never.self) { try context.uncancellable.checkCancellation() }
        #expect(context.uncancellable.threads == 3)
        #expect(ComputeContext(threads: 0).threads == 1)
    }

    /// A token can cancel itself at an exact poll, and it counts the polls: what the engine tests use
    /// to stop a pass between two layers and to see that an engine polls once per step.
    @Test func tokenCancellingAtAPollCountsItsPolls() {
        let token = CancellationToken(cancellingAtPoll: 3)
        #expect([token.isCancelled, token.isCancelled, token.isCancelled, token.isCancelled] == [false, false, true, true])
        #expect(token.polls == 4)
        let plain = CancellationToken()
        for _ in 0..<100 { #expect(!plain.isCancelled) }
        #expect(plain.polls == 100)
    }
}
