import Foundation
import VLMCLIP
import VLMTensor

// `vlmbench clip --model DIR [--threads N] [--repeats R] [--image-gflop G]
//                 [--workloads image1,image16,dense1,text,peak,batches] [--batch-sizes 1,4,8,16,32,64] [--precision fp32|bf16]`
// Times CLIPModel on the workload of bench/clip_reference.py: image encoding at batch 1 and 16
// (random pixels), text encoding of the 18 CIFAR templates × 10 CIFAR classes, tokenisation, and a
// large sgemm as the machine's OpenBLAS peak; `dense1` times an image's embedding + dense features as
// two calls (two tower passes) and as `encodeImagesWithDense` (one pass on a ViT); `batches` times one call per
// batch size (per image). With `--precision bf16` the image workloads run in fp32 and then in bf16 (keys
// "bf16_..."), and the 16 images' cosines of bf16 to fp32 embeddings are reported.
// Prints one JSON object.
func runCLIPBench(_ args: [String]) {
    var options: [String: String] = [:]
    var index = 0
    while index + 1 < args.count, args[index].hasPrefix("--") {
        options[String(args[index].dropFirst(2))] = args[index + 1]
        index += 2
    }
    guard let modelPath = options["model"] else {
        FileHandle.standardError.write("usage: vlmbench clip --model DIR [--threads N] [--repeats R] [--image-gflop G]\n".data(using: .utf8)!)
        exit(2)
    }
    let threads = Int(options["threads"] ?? "2") ?? 2
    let repeats = Int(options["repeats"] ?? "5") ?? 5
    let workloads = Set((options["workloads"] ?? "peak,image1,image16,text").split(separator: ",").map(String.init))
    guard let precision = MatrixPrecision(rawValue: options["precision"] ?? "fp32"), BF16.availablePrecisions.contains(precision) else {
        FileHandle.standardError.write("vlmbench clip: --precision must be one of \(BF16.availablePrecisions.map(\.rawValue))\n".data(using: .utf8)!)
        exit(2)
    }
    ComputeContext.setBLASThreads(threads)
    let compute = ComputeContext(threads: threads)
    do {
        var result: [String: Any] = ["implementation": "vlmd VLMCLIP (Swift + OpenBLAS)", "threads": threads,
                                     "openblas_core": MatrixMultiply.kernelName, "cpu_features": CPUFeatures.available,
                                     "precision": precision.rawValue, "bf16_kernel": BF16.kernelDescription ?? "none"]
        let loadStart = Date()
        let model = try CLIPModel(directory: URL(fileURLWithPath: modelPath))
        result["load_s"] = Date().timeIntervalSince(loadStart)
        let tokenizer = try CLIPTokenizer()
        let size = model.config.vision.imageSize
        var random = BenchRandom(seed: 1)
        let images16 = (0..<(16 * 3 * size * size)).map { _ in random.gaussian() }
        let image1 = Array(images16[0..<(3 * size * size)])

        if workloads.contains("peak") { result["sgemm_peak_gflops"] = sgemmPeak() }
        let gflop = Double(options["image-gflop"] ?? "")
        if precision != .fp32 {
            let reduced = try model.encodeImages(images16, count: 16, precision: precision, compute: compute)
            let full = try model.encodeImages(images16, count: 16, compute: compute)
            let cosines = zip(reduced, full).map { zip($0, $1).reduce(0) { $0 + Double($1.0) * Double($1.1) } }
            result["image_cosine_vs_fp32"] = ["min": cosines.min()!, "mean": cosines.reduce(0, +) / Double(cosines.count)]
        }
        // fp32 always; with --precision bf16 the same workloads again in bf16 ("bf16_" keys), alternating.
        for precision in precision == .fp32 ? [.fp32] : [.fp32, precision] {
            let prefix = precision == .fp32 ? "" : precision.rawValue + "_"
            if workloads.contains("image1") {
                _ = try model.encodeImages(image1, count: 1, precision: precision, compute: compute)
                let batch1 = try timed(repeats) { _ = try model.encodeImages(image1, count: 1, precision: precision, compute: compute) }
                result[prefix + "image_batch1_ms_per_image"] = ["best": batch1.best * 1e3, "median": batch1.median * 1e3, "cpu": batch1.cpu * 1e3]
                if let gflop { result[prefix + "image_batch1_gflops"] = gflop / batch1.best }
            }
            if workloads.contains("image16") {
                let batch16 = try timed(max(2, repeats / 2)) {
                    _ = try model.encodeImages(images16, count: 16, precision: precision, compute: compute)
                }
                result[prefix + "image_batch16_ms_per_image"] = ["best": batch16.best * 1e3 / 16, "median": batch16.median * 1e3 / 16,
                                                                 "cpu": batch16.cpu * 1e3 / 16]
                if let gflop { result[prefix + "image_batch16_gflops"] = gflop * 16 / batch16.best }
            }
        }
        if workloads.contains("batches") {
            // Per-image time of one encodeImages call of each size: what a request's batchSize costs the tower.
            let sizes = (options["batch-sizes"] ?? "1,4,8,16,32,64").split(separator: ",").compactMap { Int($0) }
            let images = (0..<(sizes.max()! * 3 * size * size)).map { _ in random.gaussian() }
            var perSize: [String: Any] = [:]
            for n in sizes {
                let batch = Array(images[0..<(n * 3 * size * size)])
                _ = try model.encodeImages(batch, count: n, compute: compute)
                let time = try timed(max(2, repeats * 4 / n)) { _ = try model.encodeImages(batch, count: n, compute: compute) }
                perSize[String(n)] = ["best": time.best * 1e3 / Double(n), "median": time.median * 1e3 / Double(n), "cpu": time.cpu * 1e3 / Double(n)]
            }
            result["image_ms_per_image_by_batch"] = perSize
        }
        if workloads.contains("dense1") {
            _ = try model.encodeImagesWithDense(image1, count: 1, compute: compute)
            let twoCalls = try timed(repeats) {
                _ = try model.encodeImages(image1, count: 1, compute: compute)
                _ = try model.encodeImageDense(image1, count: 1, compute: compute)
            }
            let oneCall = try timed(repeats) { _ = try model.encodeImagesWithDense(image1, count: 1, compute: compute) }
            result["dense_batch1_two_calls_ms"] = ["best": twoCalls.best * 1e3, "median": twoCalls.median * 1e3]
            result["dense_batch1_with_dense_ms"] = ["best": oneCall.best * 1e3, "median": oneCall.median * 1e3]
        }
        guard workloads.contains("text") else {
            let json = try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: json, as: UTF8.self))
            return
        }

        let classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        let texts = classes.flatMap { name in PromptTemplates.cifar.map { PromptTemplates.fill($0, with: name) } }
        let tokens = texts.map { tokenizer.tokenize($0) }
        _ = try model.encodeText(tokens, compute: compute)
        let text = try timed(repeats) { _ = try model.encodeText(tokens, compute: compute) }
        result["text_180_prompts_ms"] = ["best": text.best * 1e3, "median": text.median * 1e3]
        result["text_longest_prompt_tokens"] = tokens.map { $0.firstIndex(of: tokenizer.endOfText)! + 1 }.max()
        let tokenize = try timed(repeats) { _ = texts.map { tokenizer.tokenize($0) } }
        result["tokenize_180_prompts_ms"] = ["best": tokenize.best * 1e3, "median": tokenize.median * 1e3]

        let json = try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    } catch {
        FileHandle.standardError.write("vlmbench clip: \(error)\n".data(using: .utf8)!)
        exit(1)
    }
}

/// Best and median wall time of `repeats` runs, and the best process CPU time (a load-robust figure
/// at 1 thread), in seconds.
func timed(_ repeats: Int, _ body: () throws -> Void) rethrows -> (best: Double, median: Double, cpu: Double) {
    var times: [Double] = []
    var cpu = Double.infinity
    for _ in 0..<max(1, repeats) {
        let (start, startCPU) = (DispatchTime.now().uptimeNanoseconds, processCPUSeconds())
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        cpu = min(cpu, processCPUSeconds() - startCPU)
    }
    times.sort()
    return (times[0], times[times.count / 2], cpu)
}

private func processCPUSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// GFLOP/s of a 2048³ sgemm: the ceiling every model product is measured against.
private func sgemmPeak() -> Double {
    let n = 2048
    var random = BenchRandom(seed: 2)
    let a = (0..<(n * n)).map { _ in random.gaussian() }
    let b = (0..<(n * n)).map { _ in random.gaussian() }
    var c = [Float](repeating: 0, count: n * n)
    let run = {
        a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in c.withUnsafeMutableBufferPointer { c in
            MatrixMultiply.gemm(m: n, n: n, k: n, a: a.baseAddress!, lda: n, b: b.baseAddress!, ldb: n, c: c.baseAddress!, ldc: n)
        } } }
    }
    run()
    let time = timed(8, run)
    return 2 * Double(n * n * n) / time.best / 1e9
}

/// Gaussian pseudo-random floats (SplitMix64 + Box–Muller), so both runs see the same kind of input.
private struct BenchRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func uniform() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return (Float((z ^ (z >> 31)) >> 40) + 0.5) / Float(1 << 24)
    }
    mutating func gaussian() -> Float {
        (-2 * log(uniform())).squareRoot() * cos(2 * .pi * uniform())
    }
}
