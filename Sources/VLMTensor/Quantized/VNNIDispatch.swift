// Prefill tiles on AVX-512 VNNI, where the CPU has it (cpuid, checked once): the kernels live in
// VLMTensorVNNI, a module compiled for those CPUs; the AVX2 tiles of BlockDot run everywhere else.
#if arch(x86_64) && canImport(_Builtin_intrinsics.intel) && !VLM_PORTABLE_KERNELS
import VLMTensorVNNI

extension BlockDot {
    /// Four weight rows (`columns` long) against the whole groups of four activations of `views` with
    /// VNNI, when the CPU has it and the format has a VNNI tile: q4_0, q5_0, q8_0, and the K-quants
    /// where llama.cpp runs its 4-token orders (q4_K repacked, q6_K from `tiledMinimumBatch` tokens).
    /// `out(i, b, value)` for row i (0..<4) and activation b. Returns how many activations it did
    /// (a multiple of four; 0 when it did nothing).
    static func vnniTileQuads(_ format: WeightFormat, _ rows: Rows4, _ views: UnsafeBufferPointer<ActivationView>,
                              columns: Int, repacked: Bool, _ out: (Int, Int, Float) -> Void) -> Int {
        guard VNNITiles.isSupported else { return 0 }
        let whole = views.count - views.count % 4
        if let tileFormat = vnniFormat(format) {
            tileQuads(views, whole, out) { a, results in
                VNNITiles.tile4x4(tileFormat, rows, blocks: columns / 32,
                                  VNNITiles.Activations4(quants: a.quants, scales: a.scales), into: results)
            }
        } else if let kFormat = vnniKFormat(format, repacked: repacked, batch: views.count) {
            tileQuads(views, whole, out) { a, results in
                VNNITiles.kTile4x4(kFormat, rows, superBlocks: columns / 256, a, into: results)
            }
        } else {
            return 0
        }
        return whole
    }

    /// Runs `tile` on each group of four of the first `whole` activations and hands its 4 x 4 results out.
    private static func tileQuads(_ views: UnsafeBufferPointer<ActivationView>, _ whole: Int, _ out: (Int, Int, Float) -> Void,
                                  _ tile: (VNNITiles.KActivations4, UnsafeMutablePointer<Float>) -> Void) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { results in
            for b in stride(from: 0, to: whole, by: 4) {
                let v = (views[b], views[b + 1], views[b + 2], views[b + 3])
                tile(VNNITiles.KActivations4(quants: (v.0.quants, v.1.quants, v.2.quants, v.3.quants),
                                             scales: (v.0.scales, v.1.scales, v.2.scales, v.3.scales),
                                             groupSums: (v.0.groupSums, v.1.groupSums, v.2.groupSums, v.3.groupSums)),
                     results.baseAddress!)
                for r in 0..<4 {
                    for i in 0..<4 { out(r, b + i, results[4 * r + i]) }
                }
            }
        }
    }

    /// The K-quant tile whose order is the one `dotBatch` takes for this batch, if any.
    private static func vnniKFormat(_ format: WeightFormat, repacked: Bool, batch: Int) -> VNNITiles.KFormat? {
        switch format {
        case .q4_K where repacked && batch > 3: .q4_K
        case .q6_K where batch >= tiledMinimumBatch: .q6_K
        default: nil
        }
    }

    private static func vnniFormat(_ format: WeightFormat) -> VNNITiles.Format? {
        switch format {
        case .q4_0: .q4_0
        case .q5_0: .q5_0
        case .q8_0: .q8_0
        default: nil
        }
    }

    /// The VNNI tiles' name when this CPU runs them (benchmarks print it).
    static var vnniVariant: String? {
        VNNITiles.isSupported ? "AVX-512 VNNI (vpdpbusd) 4x4 prefill tiles for q4_0/q5_0/q8_0/q4_K/q6_K" : nil
    }
}
#else
extension BlockDot {
    static func vnniTileQuads(_ format: WeightFormat, _ rows: Rows4, _ views: UnsafeBufferPointer<ActivationView>,
                              columns: Int, repacked: Bool, _ out: (Int, Int, Float) -> Void) -> Int { 0 }
    static var vnniVariant: String? { nil }
}
#endif
