import Dispatch
import Foundation
import Synchronization

/// Helper threads kept alive between `ComputeContext.parallelFor` loops.
///
/// Decoding one token runs about five parallel loops per layer, each a few microseconds of work per
/// thread; waking GCD workers for every one cost as much as the work at two threads. A pool's helpers
/// instead poll an atomic for a short while after a loop (the next one usually follows within
/// microseconds), then sleep on a condition variable, so an idle daemon uses no CPU.
///
/// A pool runs one loop at a time: `WorkerPools.withPool` hands it to one caller, so concurrent
/// requests (and a loop nested in another's body) each get a pool of their own; a pool beyond the few
/// kept idle is retired once its loop is over, its helpers ended. The caller takes parts
/// too and returns once every part has finished, so the loop's body (which does not escape
/// `parallelFor`) is never used after it returns. It never waits for a helper that holds no part: on a
/// loaded machine a descheduled helper would otherwise hold every loop up by a time slice.
///
/// `@unchecked Sendable`: the loop's `count` and `body` are written by the caller that holds the pool
/// before it publishes the loop's ticket (release), and read by a helper only after it has claimed a
/// part of that loop, which the caller cannot finish (and so overwrite) without.
final class WorkerPool: @unchecked Sendable {
    /// Threads besides the caller's.
    let helpers: Int
    /// How long a helper keeps polling for the next loop before it sleeps.
    static let spinNanoseconds: UInt64 = 200_000

    /// The current loop's `Ticket`: its number, part count and next unclaimed part.
    private let ticket = Atomic<Int>(0)
    private let finishedParts = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let wake = NSCondition()
    /// Set before the ticket of the pool's last "loop": a helper that sees that loop ends instead.
    private let retiring = Atomic<Bool>(false)
    /// Helper threads started and not yet ended.
    private let runningHelpers = Atomic<Int>(0)
    private var threads: [pthread_t] = []
    private var loop = 0
    private var count = 0
    private var body: UnsafeRawPointer?

    init(helpers: Int) {
        self.helpers = helpers
        threads = (0..<helpers).map { _ in startHelper() }
    }

    /// Helpers asleep on the condition variable (not polling, not working): tests check that an idle
    /// pool ends with all of them here.
    var sleepingHelpers: Int { sleepers.load(ordering: .sequentiallyConsistent) }

    /// Helper threads that have not ended: `helpers` until the pool is retired, 0 once `retire` returns.
    var liveHelpers: Int { runningHelpers.load(ordering: .acquiring) }

    /// A joinable thread running `serve`, with a main thread's stack (bodies may keep large temporaries
    /// on the stack). The thread holds the pool until it ends.
    private func startHelper() -> pthread_t {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 8 << 20)
        runningHelpers.add(1, ordering: .relaxed)
        var thread = pthread_t()
        let error = pthread_create(&thread, &attributes, { pool in
            Unmanaged<WorkerPool>.fromOpaque(pool!).takeRetainedValue().serve()
            return nil
        }, Unmanaged.passRetained(self).toOpaque())
        precondition(error == 0, "cannot start a compute thread (pthread_create: \(error))")
        return thread
    }

    /// Ends the helpers and waits until their threads have exited. Only its holder calls it, between loops;
    /// the pool runs nothing afterwards.
    func retire() {
        retiring.store(true, ordering: .relaxed)  // published by the ticket's store
        startLoop(parts: 0)
        for thread in threads { pthread_join(thread, nil) }
        threads = []
    }

    /// Splits 0..<count into `parts` ranges as `parallelFor` does and runs `body` on them, the caller
    /// and the helpers taking ranges until none is left.
    func run(_ count: Int, parts: Int, _ body: SharedBody) {
        precondition(parts < Ticket.partLimit, "too many parts for one loop")
        withUnsafePointer(to: body) { pointer in
            self.count = count
            self.body = UnsafeRawPointer(pointer)
            let loop = startLoop(parts: parts)
            takeParts(of: loop)
            var polls = 0
            while finishedParts.load(ordering: .acquiring) < parts {
                polls += 1
                if polls % 256 == 0 { sched_yield() }  // a helper was descheduled mid-part: give it the core
            }
            self.body = nil
        }
    }

    /// Publishes the next loop's ticket, of `parts` parts, and wakes the helpers asleep; its number.
    @discardableResult
    private func startLoop(parts: Int) -> Int {
        loop = (loop + 1) & Ticket.loopMask
        finishedParts.store(0, ordering: .relaxed)
        // Sequentially consistent with the helper's `sleepers` increment: either a helper going to
        // sleep sees the new ticket, or this sees it asleep and wakes it.
        ticket.store(Ticket(loop: loop, parts: parts, next: 0).value, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            wake.lock()
            wake.broadcast()
            wake.unlock()
        }
        return loop
    }

    /// Parts of loop `loop` until none is left. Not inlined so that every reference the calls take to
    /// the body is released before the part is reported finished.
    @inline(never)
    private func takeParts(of loop: Int) {
        while true {
            let current = Ticket(ticket.load(ordering: .acquiring))
            // The part count comes from the same value as the loop number: read beside it, the next loop's
            // count (set before its ticket) could let a late helper claim a part past this loop's end.
            let (part, parts) = (current.next, current.parts)
            guard current.loop == loop, part < parts else { return }
            guard ticket.compareExchange(expected: current.value, desired: current.value + 1, ordering: .acquiring).exchanged else { continue }
            let body = self.body!.assumingMemoryBound(to: SharedBody.self), count = self.count
            body.pointee.body((count * part / parts)..<(count * (part + 1) / parts))
            finishedParts.add(1, ordering: .releasing)
        }
    }

    private func serve() {
        // Named with pthreads, not `Thread.current.name`: a Foundation `Thread` made for a foreign pthread
        // keeps its pthread_t after the thread exits (swift-corelibs-foundation#5240), and these threads exit.
        // (Glibc's module leaves pthread_setname_np out; the kernel's own file for it is this.)
        #if os(Linux)
        let comm = open("/proc/thread-self/comm", O_WRONLY)
        if comm >= 0 {
            _ = write(comm, "vlmd compute", 12)
            close(comm)
        }
        #elseif canImport(Darwin)
        pthread_setname_np("vlmd compute")
        #endif
        defer { runningHelpers.subtract(1, ordering: .releasing) }
        var seen = 0
        while true {
            seen = awaitLoop(after: seen)
            // Relaxed: the acquiring load of the ticket that announced the last loop ordered this after
            // `retire`'s store.
            if retiring.load(ordering: .relaxed) { return }
            takeParts(of: seen)
        }
    }

    /// The number of the next loop: polled for `spinNanoseconds`, then slept for.
    private func awaitLoop(after seen: Int) -> Int {
        let deadline = DispatchTime.now().uptimeNanoseconds + Self.spinNanoseconds
        var polls = 0
        while true {
            let current = Ticket(ticket.load(ordering: .acquiring)).loop
            if current != seen { return current }
            polls += 1
            if polls % 128 == 0 {
                if DispatchTime.now().uptimeNanoseconds > deadline { break }
                sched_yield()  // on a loaded machine, let a thread with work have the core
            }
        }
        wake.lock()
        sleepers.add(1, ordering: .sequentiallyConsistent)
        while Ticket(ticket.load(ordering: .sequentiallyConsistent)).loop == seen { wake.wait() }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        wake.unlock()
        return Ticket(ticket.load(ordering: .acquiring)).loop
    }
}

/// The idle pools, by helper count. A caller takes one for the length of a loop (creating it when none
/// is idle) and puts it back, unless `idleLimit` pools of its helper count are idle already: then it is
/// retired, so a burst of concurrent requests does not leave its threads asleep for the daemon's life.
enum WorkerPools {
    private static let idle = Mutex<[Int: [WorkerPool]]>([:])

    /// Idle pools kept per helper count: one per core covers as many concurrent computations as the
    /// machine runs at full speed, and no fewer than two so that two requests do not start threads for
    /// each loop.
    static let idleLimit = max(2, ComputeContext.processorCount)

    static func withPool<R>(helpers: Int, _ body: (WorkerPool) -> R) -> R {
        let pool = idle.withLock { $0[helpers]?.popLast() } ?? WorkerPool(helpers: helpers)
        defer { putBack(pool) }
        return body(pool)
    }

    /// Keeps `pool` idle, or retires it (outside the lock: it waits for the helpers to end).
    private static func putBack(_ pool: WorkerPool) {
        let kept = idle.withLock { idle in
            guard idle[pool.helpers, default: []].count < idleLimit else { return false }
            idle[pool.helpers, default: []].append(pool)
            return true
        }
        if !kept { pool.retire() }
    }

    /// Every pool created so far that is not running a loop.
    static var idlePools: [WorkerPool] { idle.withLock { $0.values.flatMap { $0 } } }
}

/// `@unchecked Sendable`: the bodies `parallelFor` shares only write disjoint memory.
struct SharedBody: @unchecked Sendable {
    let body: (Range<Int>) -> Void
    init(_ body: @escaping (Range<Int>) -> Void) { self.body = body }
}

/// A pool's ticket, one atomic word: the loop's number (23 bits; a helper never lags 2^23 loops), its part
/// count and its next unclaimed part (20 bits each). A part is claimed by a compare-and-swap of the whole
/// word, so a helper that looks late, after its loop ended, claims nothing.
private struct Ticket {
    static let loopMask = (1 << 23) - 1
    static let partLimit = 1 << 20
    let value: Int

    init(_ value: Int) { self.value = value }
    init(loop: Int, parts: Int, next: Int) { value = loop << 40 | parts << 20 | next }

    var loop: Int { value >> 40 }
    var parts: Int { (value >> 20) & (Self.partLimit - 1) }
    var next: Int { value & (Self.partLimit - 1) }
}
