import Foundation
import VLMTensor

// `vlmbench gemm [--threads N] [--repeats R]`
// The matrix products of RN50's convolutions at 224 px (one image, channels-last: pixels × patch ·
// patch × out), each timed with OpenBLAS sgemm and with the packed-weight product of PackedGEMM.swift
// (bias + ReLU fused), alternately. Prints GFLOP/s per shape. `--precision bf16` times the bf16 packed
// product (BF16GEMM.swift) too, in GFLOP/s-equivalent (same FLOP count), on CPUs with AVX-512 BF16.
func runGEMMBench(_ args: [String]) {
    var options: [String: String] = [:]
    for pair in stride(from: 0, to: args.count - 1, by: 2) where args[pair].hasPrefix("--") {
        options[String(args[pair].dropFirst(2))] = args[pair + 1]
    }
    let threads = Int(options["threads"] ?? "2") ?? 2
    let repeats = Int(options["repeats"] ?? "5") ?? 5
    ComputeContext.setBLASThreads(threads)
    let compute = ComputeContext(threads: threads)
    // `--clock thread`: the calling thread's CPU time instead of wall time (with --threads 1 all the work runs
    // on it), so that other processes on a shared machine do not count against either side.
    let threadClock = options["clock"] == "thread"
    func now() -> Double {
        guard threadClock else { return Double(DispatchTime.now().uptimeNanoseconds) }
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) * 1e9 + Double(t.tv_nsec)
    }
    print("threads \(threads), OpenBLAS core \(MatrixMultiply.kernelName)")
    let bf16 = options["precision"] == "bf16" && BF16.isSupported
    print("| m × k × n | OpenBLAS GFLOP/s | packed GFLOP/s |" + (bf16 ? " bf16 packed GFLOP/s |" : ""))
    print("|---|---|---|" + (bf16 ? "---|" : ""))
    // `--shapes vit`: ViT-B/32's linears at batch 16 (800 tokens) and batch 1 (50 tokens).
    let vit = [(800, 768, 2304), (800, 768, 768), (800, 768, 3072), (800, 3072, 768), (50, 768, 2304), (50, 768, 3072), (50, 3072, 768)]
    let shapes = options["shapes"] == "vit" ? vit : [(3136, 576, 64), (3136, 64, 256), (3136, 256, 64), (784, 1152, 128), (784, 128, 512), (196, 2304, 256),
                  (196, 1024, 256), (49, 4608, 512), (49, 512, 2048), (49, 2048, 512), (12544, 288, 32)]
    for (m, k, n) in shapes {
        var seed: UInt32 = 7
        func next() -> Float { seed = seed &* 1_664_525 &+ 1_013_904_223; return Float(seed >> 8) / Float(1 << 24) - 0.5 }
        let a = (0..<(m * k)).map { _ in next() }
        let b = (0..<(k * n)).map { _ in next() }
        let bias = [Float](repeating: 0.1, count: n)
        var c = [Float](repeating: 0, count: m * n)
        let packed = PackedMatrix(b, rows: k, columns: n)
        let packedBF16 = bf16 ? BF16Matrix(b, rows: k, columns: n) : nil
        var best = (blas: Double.infinity, packed: Double.infinity, bf16: Double.infinity)
        for _ in 0..<repeats {
            a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in c.withUnsafeMutableBufferPointer { c in
                var start = now()
                MatrixMultiply.gemm(m: m, n: n, k: k, a: a.baseAddress!, lda: k, b: b.baseAddress!, ldb: n, c: c.baseAddress!, ldc: n)
                best.blas = min(best.blas, now() - start)
                start = now()
                packed.multiply(a.baseAddress!, lda: k, m: m, into: c.baseAddress!, ldc: n, bias: bias, accumulate: false, relu: true, compute: compute)
                best.packed = min(best.packed, now() - start)
                if let packedBF16 {
                    start = now()
                    packedBF16.multiply(a.baseAddress!, lda: k, m: m, into: c.baseAddress!, ldc: n, bias: bias, accumulate: false, relu: true,
                                        compute: compute)
                    best.bf16 = min(best.bf16, now() - start)
                }
            } } }
        }
        let flop = 2 * Double(m * k * n)
        print("| \(m) × \(k) × \(n) | \(String(format: "%.0f", flop / best.blas)) | \(String(format: "%.0f", flop / best.packed)) |"
              + (bf16 ? " \(String(format: "%.0f", flop / best.bf16)) |" : ""))
    }
}
