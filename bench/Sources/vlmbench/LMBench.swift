// vlmbench lm: prefill and decode throughput of a GGUF language model (bench/lm.sh runs it beside
// llama-cpp-python with the same prompt, token counts and thread count).
//
//   vlmbench lm --model PATH [--threads N] [--prompt-tokens 512] [--gen-tokens 128] [--repeats 3]
import Foundation
import VLMLanguage
import VLMTensor

func runLMBench(_ args: [String]) {
    var options: [String: String] = [:]
    var i = 0
    while i + 1 < args.count, args[i].hasPrefix("--") { options[String(args[i].dropFirst(2))] = args[i + 1]; i += 2 }
    guard let path = options["model"] else {
        FileHandle.standardError.write("usage: vlmbench lm --model PATH [--threads N] [--prompt-tokens N] [--gen-tokens N] [--repeats N]\n".data(using: .utf8)!)
        exit(2)
    }
    let threads = Int(options["threads"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount
    let promptTokens = Int(options["prompt-tokens"] ?? "") ?? 512
    let genTokens = Int(options["gen-tokens"] ?? "") ?? 128
    let repeats = Int(options["repeats"] ?? "") ?? 3
    do {
        let model = try LanguageModel(path: URL(fileURLWithPath: path), contextLength: promptTokens + genTokens + 8)
        let compute = ComputeContext(threads: threads)
        let prompt = benchmarkPrompt(model, tokens: promptTokens)
        // Wall-clock rates, and rates per CPU-second of the process (all threads): on a shared machine the
        // second is less sensitive to time spent descheduled.
        var prefill: [Double] = [], decode: [Double] = [], prefillCPU: [Double] = [], decodeCPU: [Double] = []
        for _ in 0..<repeats {
            var cache = model.transformer.makeCache(capacity: model.contextLength)
            var start = Date(), cpu = processCPUSeconds()
            var logits = try model.prefill(prompt, cache: &cache, batchSize: 512, compute: compute)
            prefill.append(Double(prompt.count) / Date().timeIntervalSince(start))
            prefillCPU.append(Double(prompt.count) / (processCPUSeconds() - cpu))
            start = Date(); cpu = processCPUSeconds()
            for _ in 0..<genTokens {
                let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
                logits = try model.transformer.forward([next], cache: &cache, compute: compute).logits
            }
            decode.append(Double(genTokens) / Date().timeIntervalSince(start))
            decodeCPU.append(Double(genTokens) / (processCPUSeconds() - cpu))
        }
        let description = model.description
        print(String(format: "vlmbench lm  %@ (%@)  threads %d  prompt %d  gen %d", description.name, description.quantization,
                     threads, prompt.count, genTokens))
        print(String(format: "  prefill %.1f tok/s (best of %d)   decode %.1f tok/s   peak RSS %.0f MB",
                     prefill.max()!, repeats, decode.max()!, Double(peakResidentBytes()) / 1e6))
        print("  kernels: \(QuantizedMatrix.kernelVariant)")
        print(String(format: "RESULT prefill_tps=%.2f decode_tps=%.2f peak_rss_mb=%.1f prefill_cpu_tps=%.2f decode_cpu_tps=%.2f",
                     prefill.max()!, decode.max()!, Double(peakResidentBytes()) / 1e6, prefillCPU.max()!, decodeCPU.max()!))
    } catch {
        FileHandle.standardError.write("vlmbench lm: \(error)\n".data(using: .utf8)!)
        exit(1)
    }
}

/// `tokens` ids of a fixed English text (repeated), with the model's BOS if it uses one; the same text
/// bench/lm_reference.py tokenizes.
private func benchmarkPrompt(_ model: LanguageModel, tokens: Int) -> [Int32] {
    let paragraph = "The history of computing is a story of people who wanted to calculate faster and more reliably. "
        + "From the abacus to mechanical calculators, from punched cards to transistors, each step made machines "
        + "smaller, cheaper and more capable, and each step changed what people expected computers to do. "
    var ids = model.tokenize(String(repeating: paragraph, count: tokens / 16 + 2))
    ids = Array(ids.prefix(tokens))
    return ids
}

/// CPU time used by the process so far (every thread), in seconds.
private func processCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// Peak resident set size (VmHWM) from /proc, in bytes.
private func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
    }
    return 0
}
