import Dispatch

/// Splits 0..<count into contiguous ranges and runs `body` on them concurrently, one range per
/// thread (as many threads as OpenBLAS uses). For the memory-bound passes between matrix products
/// (im2col): run on one thread they would leave the other cores idle, since OpenBLAS only
/// parallelises inside its own calls. Small jobs run inline. `body` must only touch disjoint
/// memory for disjoint ranges.
public func parallelRanges(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
    let threads = min(TensorThreads.current, count / max(minimumPerThread, 1))
    guard threads > 1 else {
        if count > 0 { body(0..<count) }
        return
    }
    withoutActuallyEscaping(body) { body in
        // The ranges are disjoint and concurrentPerform returns only after every part has finished,
        // so sharing the closure (and the pointers it captured) across the worker threads is safe.
        let shared = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: threads) { part in
            shared.value((count * part / threads)..<(count * (part + 1) / threads))
        }
    }
}

private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
