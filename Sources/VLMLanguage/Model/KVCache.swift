// Keys and values of every position seen so far, per layer.
import VLMTensor

/// The attention memory of one sequence, stored as fp16 like llama.cpp's default cache
/// (`type_k/type_v = f16`): the same rounding, half the memory of Float; attention widens each value
/// exactly to Float as it reads it.
/// Values are stored transposed (per dimension, all positions), as llama.cpp's non-flash-attention
/// cache does, so the weighted sum over positions reads contiguous memory.
///
/// A value type: `var copy = cache` forks a sequence (e.g. beam candidates sharing a prompt prefix);
/// the arrays are copied (whole, all layers) on the first write to either copy.
public struct KVCache: Sendable {
    public let capacity: Int
    let layerCount: Int
    let keyValueDimension: Int
    /// [layer][position][keyValueDimension]
    var keys: [Float16]
    /// [layer][keyValueDimension][position]
    var values: [Float16]
    /// Positions filled so far; the next token goes at `count`.
    public private(set) var count = 0
    /// Where the RoPE position parts from the slot count: (slot count after an M-RoPE image, the image's
    /// position advance minus its token count). Empty for every model without M-RoPE.
    private var positionShifts: [(end: Int, shift: Int)] = []

    /// RoPE position of the next token: `count`, except after M-RoPE images, whose grid moves the position
    /// by max(rows, columns) rather than by their token count.
    public var nextPosition: Int { positionShifts.reduce(count) { $0 + $1.shift } }

    public init(hyperparameters hp: Hyperparameters, capacity: Int) {
        self.capacity = capacity
        layerCount = hp.blockCount
        keyValueDimension = hp.keyValueDimension
        keys = [Float16](repeating: 0, count: hp.blockCount * capacity * hp.keyValueDimension)
        values = [Float16](repeating: 0, count: keys.count + Self.valueTail)
    }

    /// Zeros after the last value row: a batch's attention reads each row in whole 16-position vectors
    /// (positions past those it sees weigh exactly zero), which may run up to 15 positions past its end.
    static let valueTail = 16

    public var byteCount: Int { (keys.count + values.count - Self.valueTail) * MemoryLayout<Float16>.size }

    /// Bytes of a cache of `capacity` positions for a model of this shape.
    public static func byteCount(hyperparameters hp: Hyperparameters, capacity: Int) -> Int {
        2 * MemoryLayout<Float16>.size * hp.blockCount * capacity * hp.keyValueDimension
    }

    /// Forgets positions from `length` on (e.g. to re-run a shorter shared prefix).
    public mutating func truncate(to length: Int) {
        precondition(length >= 0 && length <= count, "cannot truncate a cache of \(count) to \(length)")
        count = length
        positionShifts.removeAll { $0.end > length }
    }

    /// `n` slots filled, moving the position counter by `positions` (default: one a slot).
    mutating func advance(by n: Int, positions: Int? = nil) {
        count += n
        if let positions, positions != n { positionShifts.append((count, positions - n)) }
    }

    /// Start of the key of `position` in `keys`.
    @inline(__always)
    func keyOffset(layer: Int, position: Int) -> Int { (layer * capacity + position) * keyValueDimension }

    /// Start of the row of dimension `dimension` (all positions) in `values`.
    @inline(__always)
    func valueOffset(layer: Int, dimension: Int) -> Int { (layer * keyValueDimension + dimension) * capacity }
}
