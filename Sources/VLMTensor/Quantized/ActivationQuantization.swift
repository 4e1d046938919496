// The activation side of a quantised dot product.
//
// ggml never dequantises weights for a matrix product on the CPU: it converts the *activation* row to
// the weight type's partner format (`vec_dot_type`) and takes integer dot products block by block.
//   q4_0, q5_0, q8_0   -> activations as Q8_0 (fp16 scale d, 32 int8)
//   q4_1, q5_1         -> activations as Q8_1 (fp16 d, fp16 s = d * sum(q), 32 int8)
//   K-quant weights    -> activations as Q8_K (Float d, 256 int8, int16 sums of each 16)
//   f16 / bf16 weights -> activations rounded to fp16 / bf16
// Reproducing that rounding is what makes greedy decoding token-for-token identical to llama.cpp.

/// One activation row converted to the partner format of a weight format.
public struct QuantizedActivation {
    /// Per-block scale (Q8_0/Q8_1: the fp16-rounded d; Q8_K: the Float d).
    public var scales: [Float] = []
    /// Q8_1 only: fp16-rounded d * sum(q) per block of 32.
    public var blockSums: [Float] = []
    /// Q8_K only: sum of each group of 16 quants (16 per block of 256).
    public var groupSums: [Int32] = []
    /// The int8 quants (Q8_*), or empty.
    public var quants: [Int8] = []
    /// Q8_0/Q8_1: each block's quants widened to Int16 and split into its 16 even-indexed then its 16
    /// odd-indexed elements, the layout the 32-value block kernels multiply against.
    public var splitQuants: [Int16] = []
    /// f32/f16/bf16: the activation values as the weight format sees them (rounded if needed).
    public var values: [Float] = []

    /// Blocks are independent, so a prefill batch's blocks are shared out over `compute`'s threads
    /// (single-threaded, this step alone kept a second core idle for several percent of a prefill;
    /// a decoded token's few blocks stay on the caller's thread).
    public init(_ x: UnsafeBufferPointer<Float>, for format: WeightFormat, compute: ComputeContext = .init(threads: 1)) {
        switch format {
        case .f32: values = Array(x)
        case .f16: values = x.map(roundedThroughHalf)
        case .bf16: values = x.map { bfloat16ToFloat(floatToBFloat16($0)) }
        case .q4_0, .q5_0, .q8_0: quantizeQ8(x, withSums: false, compute: compute)
        case .q4_1, .q5_1: quantizeQ8(x, withSums: true, compute: compute)
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: quantizeQ8K(x, compute: compute)
        }
    }

    /// `quantize_row_q8_0` / `quantize_row_q8_1` as ggml's AVX2 path computes them (the path llama.cpp
    /// takes on this hardware): d = max|x| / 127, q = round-half-even(x * (127 / max|x|)).
    private mutating func quantizeQ8(_ x: UnsafeBufferPointer<Float>, withSums: Bool, compute: ComputeContext) {
        let blocks = x.count / 32
        var scales = [Float](repeating: 0, count: blocks)
        var quants = [Int8](repeating: 0, count: blocks * 32)
        var blockSums = [Float](repeating: 0, count: withSums ? blocks : 0)
        quants.withUnsafeMutableBufferPointer { quants in
            scales.withUnsafeMutableBufferPointer { scales in
                blockSums.withUnsafeMutableBufferPointer { blockSums in
                    let (x, quants) = (SendablePointer(UnsafeMutablePointer(mutating: x.baseAddress!)), SendablePointer(quants.baseAddress!))
                    let scales = SendablePointer(scales.baseAddress!)
                    let blockSums = withSums ? SendablePointer(blockSums.baseAddress!) : nil
                    compute.parallelFor(blocks, minimumPartSize: 64) { part in
                        for b in part {
                            // Raw pointers and eight-lane maxima: a decoded token quantises its row alone, on
                            // the caller's thread, so this step is part of what a second thread cannot share.
                            let xb = x.pointer + b * 32, qb = quants.pointer + b * 32
                            var largest = SIMD8<UInt32>(repeating: 0)
                            for i in 0..<4 {  // |x| as bits: for non-negative floats the integer order is the float order
                                let bits = UnsafeRawPointer(xb + 8 * i).loadUnaligned(as: SIMD8<UInt32>.self) & 0x7FFF_FFFF
                                largest = pointwiseMax(largest, bits)
                            }
                            let amax = Float(bitPattern: largest.max())
                            let d = amax / 127
                            let inverse: Float = amax != 0 ? 127 / amax : 0
                            var sum: Int32 = 0
                            for j in 0..<32 {
                                let q = Int8((xb[j] * inverse).rounded(.toNearestOrEven))
                                qb[j] = q
                                sum += Int32(q)
                            }
                            scales.pointer[b] = roundedThroughHalf(d)
                            if let blockSums { blockSums.pointer[b] = roundedThroughHalf(Float(sum) * d) }
                        }
                    }
                }
            }
        }
        self.scales = scales
        self.quants = quants
        if withSums { self.blockSums = blockSums }
        guard activationsNeedSplitQuants else { return }
        splitQuants = .init(repeating: 0, count: blocks * 32)
        for b in 0..<blocks {
            for m in 0..<16 {
                splitQuants[b * 32 + m] = Int16(quants[b * 32 + 2 * m])
                splitQuants[b * 32 + 16 + m] = Int16(quants[b * 32 + 2 * m + 1])
            }
        }
    }

    /// `quantize_row_q8_K`: the signed value of largest magnitude maps to -127 (sic, as ggml does).
    private mutating func quantizeQ8K(_ x: UnsafeBufferPointer<Float>, compute: ComputeContext) {
        let blocks = x.count / 256
        var scales = [Float](repeating: 0, count: blocks)
        var quants = [Int8](repeating: 0, count: blocks * 256)
        var groupSums = [Int32](repeating: 0, count: blocks * 16)
        // Through raw buffers: element by element on the arrays, this was slower than the K-quant products.
        quants.withUnsafeMutableBufferPointer { quants in
            groupSums.withUnsafeMutableBufferPointer { groupSums in
              scales.withUnsafeMutableBufferPointer { scales in
                let (x, quants) = (SendablePointer(UnsafeMutablePointer(mutating: x.baseAddress!)), SendablePointer(quants.baseAddress!))
                let (groupSums, scales) = (SendablePointer(groupSums.baseAddress!), SendablePointer(scales.baseAddress!))
                compute.parallelFor(blocks, minimumPartSize: 16) { part in
                  for b in part {
                    let xb = x.pointer + b * 256, qb = quants.pointer + b * 256
                    var amax: Float = 0, signedMax: Float = 0
                    for j in 0..<256 where abs(xb[j]) > amax {
                        amax = abs(xb[j]); signedMax = xb[j]
                    }
                    if amax == 0 { continue }
                    let inverseScale = -127 / signedMax
                    for group in 0..<16 {
                        var sum: Int32 = 0
                        for j in 16 * group..<16 * group + 16 {
                            let q = Int8(min(127, Int32((inverseScale * xb[j]).rounded(.toNearestOrEven))))
                            qb[j] = q
                            sum &+= Int32(q)
                        }
                        groupSums.pointer[b * 16 + group] = sum
                    }
                    scales.pointer[b] = 1 / inverseScale
                  }
                }
              }
            }
        }
        self.scales = scales
        self.quants = quants
        self.groupSums = groupSums
    }
}

