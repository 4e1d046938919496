/// A growable scratch area for temporaries (im2col columns, attention scores) that is reused across
/// layers and calls instead of allocating inside hot loops. Not thread-safe: each forward pass owns one.
public final class ScratchBuffer {
    private var pointer: UnsafeMutablePointer<Float>
    private var capacity: Int

    public init(capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        pointer = .allocate(capacity: self.capacity)
    }

    deinit { pointer.deallocate() }

    /// A region of at least `count` floats, valid until the next call. Contents are unspecified.
    public func region(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            capacity = count
            pointer = .allocate(capacity: count)
        }
        return pointer
    }
}
