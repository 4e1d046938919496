// Keys and values of every position seen so far, per layer.
import VLMTensor

/// The attention memory of one sequence. Stored as fp16 like llama.cpp's default cache (`type_k/type_v
/// = f16`), which both halves memory and reproduces llama.cpp's rounding.
///
/// A value type: `var copy = cache` forks a sequence (e.g. beam candidates sharing a prompt prefix);
/// the arrays are copied lazily on first write.
public struct KVCache: Sendable {
    public let capacity: Int
    let layerCount: Int
    let keyValueDimension: Int
    /// [layer][position][keyValueDimension], fp16 bits.
    var keys: [UInt16]
    var values: [UInt16]
    /// Positions filled so far; the next token goes at `count`.
    public private(set) var count = 0

    public init(hyperparameters hp: Hyperparameters, capacity: Int) {
        self.capacity = capacity
        layerCount = hp.blockCount
        keyValueDimension = hp.keyValueDimension
        keys = [UInt16](repeating: 0, count: hp.blockCount * capacity * hp.keyValueDimension)
        values = keys
    }

    public var byteCount: Int { (keys.count + values.count) * 2 }

    /// Forgets positions from `length` on (e.g. to re-run a shorter shared prefix).
    public mutating func truncate(to length: Int) {
        precondition(length >= 0 && length <= count, "cannot truncate a cache of \(count) to \(length)")
        count = length
    }

    mutating func advance(by n: Int) { count += n }

    @inline(__always)
    func offset(layer: Int, position: Int) -> Int { (layer * capacity + position) * keyValueDimension }
}
