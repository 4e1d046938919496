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
/// requests (and a loop nested in another's body) each get a pool of their own. The caller takes parts
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

    /// The loop's number (high 32 bits) and its next unclaimed part (low 32 bits): a part is claimed by
    /// a compare-and-swap of both, so a helper that looks late, after its loop ended, claims nothing.
    private let ticket = Atomic<Int>(0)
    private let parts = Atomic<Int>(0)
    private let finishedParts = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let wake = NSCondition()
    private var loop = 0
    private var count = 0
    private var body: UnsafeRawPointer?

    init(helpers: Int) {
        self.helpers = helpers
        for _ in 0..<helpers {
            let thread = Thread { self.serve() }  // pools are never released: their helpers hold them
            thread.name = "vlmd compute"
            thread.stackSize = 8 << 20  // as a main thread's: bodies may keep large temporaries on the stack
            thread.start()
        }
    }

    /// Helpers asleep on the condition variable (not polling, not working): tests check that an idle
    /// pool ends with all of them here.
    var sleepingHelpers: Int { sleepers.load(ordering: .sequentiallyConsistent) }

    /// Splits 0..<count into `parts` ranges as `parallelFor` does and runs `body` on them, the caller
    /// and the helpers taking ranges until none is left.
    func run(_ count: Int, parts: Int, _ body: SharedBody) {
        precondition(parts < 1 << 32, "too many parts for one loop")
        withUnsafePointer(to: body) { pointer in
            loop = (loop + 1) & 0x7FFF_FFFF  // the ticket's high half; a helper never lags 2^31 loops
            self.count = count
            self.body = UnsafeRawPointer(pointer)
            self.parts.store(parts, ordering: .relaxed)
            finishedParts.store(0, ordering: .relaxed)
            // Sequentially consistent with the helper's `sleepers` increment: either a helper going to
            // sleep sees the new ticket, or this sees it asleep and wakes it.
            ticket.store(loop << 32, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                wake.lock()
                wake.broadcast()
                wake.unlock()
            }
            takeParts(of: loop)
            var polls = 0
            while finishedParts.load(ordering: .acquiring) < parts {
                polls += 1
                if polls % 256 == 0 { sched_yield() }  // a helper was descheduled mid-part: give it the core
            }
            self.body = nil
        }
    }

    /// Parts of loop `loop` until none is left. Not inlined so that every reference the calls take to
    /// the body is released before the part is reported finished.
    @inline(never)
    private func takeParts(of loop: Int) {
        while true {
            let current = ticket.load(ordering: .acquiring)
            let part = current & 0xFFFF_FFFF
            guard current >> 32 == loop, part < parts.load(ordering: .relaxed) else { return }
            guard ticket.compareExchange(expected: current, desired: current + 1, ordering: .acquiring).exchanged else { continue }
            let body = self.body!.assumingMemoryBound(to: SharedBody.self), count = self.count
            let parts = self.parts.load(ordering: .relaxed)
            body.pointee.body((count * part / parts)..<(count * (part + 1) / parts))
            finishedParts.add(1, ordering: .releasing)
        }
    }

    private func serve() {
        var seen = 0
        while true {
            seen = awaitLoop(after: seen)
            takeParts(of: seen)
        }
    }

    /// The number of the next loop: polled for `spinNanoseconds`, then slept for.
    private func awaitLoop(after seen: Int) -> Int {
        let deadline = DispatchTime.now().uptimeNanoseconds + Self.spinNanoseconds
        var polls = 0
        while true {
            let current = ticket.load(ordering: .acquiring) >> 32
            if current != seen { return current }
            polls += 1
            if polls % 128 == 0 {
                if DispatchTime.now().uptimeNanoseconds > deadline { break }
                sched_yield()  // on a loaded machine, let a thread with work have the core
            }
        }
        wake.lock()
        sleepers.add(1, ordering: .sequentiallyConsistent)
        while ticket.load(ordering: .sequentiallyConsistent) >> 32 == seen { wake.wait() }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        wake.unlock()
        return ticket.load(ordering: .acquiring) >> 32
    }
}

/// The idle pools, by helper count. A caller takes one for the length of a loop (creating it when none
/// is idle) and puts it back, so there are only ever as many pools as loops that ran at once.
enum WorkerPools {
    private static let idle = Mutex<[Int: [WorkerPool]]>([:])

    static func withPool<R>(helpers: Int, _ body: (WorkerPool) -> R) -> R {
        let pool = idle.withLock { $0[helpers]?.popLast() } ?? WorkerPool(helpers: helpers)
        defer { idle.withLock { $0[helpers, default: []].append(pool) } }
        return body(pool)
    }

    /// Every pool created so far that is not running a loop.
    static var idlePools: [WorkerPool] { idle.withLock { $0.values.flatMap { $0 } } }
}

/// `@unchecked Sendable`: the bodies `parallelFor` shares only write disjoint memory.
struct SharedBody: @unchecked Sendable {
    let body: (Range<Int>) -> Void
    init(_ body: @escaping (Range<Int>) -> Void) { self.body = body }
}
