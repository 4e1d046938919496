import Foundation
import Synchronization
import Testing
@testable import VLMTensor

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

    /// Loops run back to back on one context reuse its pool's helpers; each loop still covers every
    /// index exactly once (a helper that saw a loop twice, or missed one, would double or drop parts).
    @Test func backToBackLoopsCoverEveryIndexOnce() {
        let context = ComputeContext(threads: 3)
        for loop in 0..<500 {
            let count = 1 + loop % 37
            var hits = [Int](repeating: 0, count: count)
            hits.withUnsafeMutableBufferPointer { hits in
                let hits = UnsafeSendable(hits.baseAddress!)
                context.parallelFor(count, parts: count) { part in
                    for i in part { hits.pointer[i] += 1 }
                }
            }
            #expect(hits == [Int](repeating: 1, count: count), "loop \(loop)")
        }
    }

    /// Several contexts at once (concurrent requests) and a loop inside another loop's body each get
    /// helpers of their own: every index of every loop is covered once and nothing waits forever.
    @Test func concurrentAndNestedLoopsCoverEveryIndexOnce() {
        let outer = 4, inner = 300
        let sums = Mutex([Int](repeating: 0, count: outer))
        DispatchQueue.concurrentPerform(iterations: outer) { request in
            let context = ComputeContext(threads: 2)
            for _ in 0..<50 {
                context.parallelFor(8, parts: 8) { part in
                    for _ in part {
                        context.parallelFor(inner, parts: 4) { range in
                            sums.withLock { $0[request] += range.reduce(0, +) }
                        }
                    }
                }
            }
        }
        let expected = 50 * 8 * (inner * (inner - 1) / 2)
        #expect(sums.withLock { $0 } == [Int](repeating: expected, count: outer))
    }

    /// A computation cancelled part-way (its bodies return early once the token is set, as the
    /// engines' do) leaves the pool usable: the next loop on the same threads covers everything.
    @Test func cancelledLoopLeavesThePoolUsable() throws {
        let context = ComputeContext(threads: 2, cancellation: CancellationToken(cancellingAtPoll: 5))
        let done = Atomic<Int>(0)
        context.parallelFor(64, parts: 64) { part in
            if context.isCancelled { return }
            _ = done.add(part.count, ordering: .relaxed)
        }
        #expect(done.load(ordering: .relaxed) < 64)
        #expect(throws: ComputeCancelled.self) { try context.checkCancellation() }
        let after = Atomic<Int>(0)
        context.uncancellable.parallelFor(64, parts: 64) { part in _ = after.add(part.count, ordering: .relaxed) }
        #expect(after.load(ordering: .relaxed) == 64)
    }

    /// Between loops the helpers poll only briefly, then sleep: an idle daemon uses no CPU. Seven
    /// threads (six helpers) is a pool no other test uses.
    @Test func idleHelpersSleep() {
        let context = ComputeContext(threads: 7)
        context.parallelFor(70, parts: 7) { _ in usleep(100) }
        let sixHelperPools = { WorkerPools.idlePools.filter { $0.helpers == 6 } }
        #expect(!sixHelperPools().isEmpty)
        // The helpers spin for WorkerPool.spinNanoseconds (0.2 ms); allow a loaded machine seconds.
        for _ in 0..<500 where !sixHelperPools().allSatisfy({ $0.sleepingHelpers == 6 }) { usleep(10_000) }
        #expect(sixHelperPools().allSatisfy { $0.sleepingHelpers == 6 })
    }

    /// Loops back to back whose part counts keep changing (a layer's small loop, then a larger one): every
    /// index of every loop runs exactly once. A helper that read the next loop's part count beside the
    /// previous loop's ticket could claim a part past that loop's end and run it against the next loop's
    /// body, once too often, and count it finished (stop 22 and 23's one-off SIGILLs in CI).
    @Test func loopsWithChangingPartCountsRunEachIndexOnce() {
        let context = ComputeContext(threads: 3), count = 12
        let seen = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        defer { seen.deallocate() }
        var failures = 0
        for round in 0..<20_000 {
            seen.initialize(repeating: 0)
            context.parallelFor(count, parts: [1, 3, 2, 7, 3, 12][round % 6]) { range in
                for i in range { seen[i] += 1 }
            }
            if seen.contains(where: { $0 != 1 }) { failures += 1 }
        }
        #expect(failures == 0)
    }

    #if os(Linux)
    /// Helper threads carry a name a profiler or `top -H` shows; each part waits for the other, so both the
    /// caller and the helper of a two-thread pool (four helpers here: a pool no other test uses) take one.
    @Test func helperThreadsAreNamed() throws {
        let started = Atomic<Int>(0), names = Mutex<Set<String>>([])
        ComputeContext(threads: 5).parallelFor(5, parts: 5) { _ in
            _ = started.add(1, ordering: .relaxed)
            for _ in 0..<20_000 where started.load(ordering: .relaxed) < 5 { usleep(100) }
            let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
            names.withLock { _ = $0.insert(name.trimmingCharacters(in: .newlines)) }
        }
        #expect(started.load(ordering: .relaxed) == 5)
        #expect(names.withLock { $0 }.contains("vlmd compute"))
    }
    #endif

    /// A burst of loops run at once (concurrent requests) leaves at most `idleLimit` idle pools of its
    /// helper count; each surplus pool is retired as its loop returns, its helper threads joined, so none
    /// is left asleep for the daemon's life. Five helpers is a pool no other test uses.
    @Test func aBurstOfConcurrentLoopsLeavesABoundedNumberOfPools() {
        let helpers = 5, burst = WorkerPools.idleLimit + 3
        // Each caller's pool, the indices its loop covered and its live helpers during the loop.
        let held = SharedCell(Mutex<[(pool: WorkerPool, covered: Int, live: Int)]>([])), arrived = SharedCell(Atomic<Int>(0))
        let done = DispatchGroup()
        for _ in 0..<burst {
            done.enter()
            Thread {
                WorkerPools.withPool(helpers: helpers) { pool in
                    // Every caller holds its pool until all have one: the burst really runs at once.
                    _ = arrived.value.add(1, ordering: .relaxed)
                    while arrived.value.load(ordering: .relaxed) < burst { sched_yield() }
                    let covered = SharedCell(Atomic<Int>(0))
                    pool.run(60, parts: 12, SharedBody { part in _ = covered.value.add(part.count, ordering: .relaxed) })
                    held.value.withLock { $0.append((pool, covered.value.load(ordering: .relaxed), pool.liveHelpers)) }
                }
                done.leave()
            }.start()
        }
        done.wait()
        let loops = held.value.withLock { $0 }
        #expect(loops.allSatisfy { $0.covered == 60 && $0.live == helpers })
        let pools = loops.map(\.pool)
        #expect(Set(pools.map(ObjectIdentifier.init)).count == burst)
        let idle = Set(WorkerPools.idlePools.filter { $0.helpers == helpers }.map(ObjectIdentifier.init))
        #expect(idle.count <= WorkerPools.idleLimit)
        let retired = pools.filter { !idle.contains(ObjectIdentifier($0)) }
        #expect(retired.count >= burst - WorkerPools.idleLimit)
        #expect(retired.allSatisfy { $0.liveHelpers == 0 })
        #expect(pools.filter { idle.contains(ObjectIdentifier($0)) }.allSatisfy { $0.liveHelpers == helpers })
        // The pools kept still serve loops.
        let covered = Atomic<Int>(0)
        ComputeContext(threads: helpers + 1).parallelFor(600, parts: 60) { part in _ = covered.add(part.count, ordering: .relaxed) }
        #expect(covered.load(ordering: .relaxed) == 600)
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

/// A pointer the loops above write disjoint parts of.
private struct UnsafeSendable<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}

/// A lock or atomic (not copyable) that escaping closures on other threads share.
private final class SharedCell<Value: ~Copyable & Sendable>: Sendable {
    let value: Value
    init(_ value: consuming Value) { self.value = value }
}
