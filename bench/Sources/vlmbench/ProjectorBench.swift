// vlmbench projector: an image's encode through an mmproj projector (preprocessing, tower, projector:
// the image's tokens, as `generate` makes them), the figure bench/projectors.sh sets beside llama.cpp's
// mtmd (tokenize + encode every image chunk) for the same file and image.
//
//   vlmbench projector --mmproj PATH --image PNG [--threads 2] [--repeats 3] [--max-tokens N]
//
// `--max-tokens` caps qwen2vl/qwen25vl images (mtmd's image_max_tokens); other types ignore it.
import Foundation
import VLMImage
import VLMReasoning
import VLMTensor

func runProjectorBench(_ args: [String]) {
    var options: [String: String] = [:]
    var i = 0
    while i + 1 < args.count, args[i].hasPrefix("--") { options[String(args[i].dropFirst(2))] = args[i + 1]; i += 2 }
    guard let path = options["mmproj"], let imagePath = options["image"] else {
        FileHandle.standardError.write("usage: vlmbench projector --mmproj PATH --image PNG [--threads N] [--repeats N] [--max-tokens N]\n".data(using: .utf8)!)
        exit(2)
    }
    let threads = Int(options["threads"] ?? "") ?? 2
    let repeats = Int(options["repeats"] ?? "") ?? 3
    do {
        let url = URL(fileURLWithPath: path)
        var projector = try MultimodalProjectors.load(url: url)
        if projector is Qwen2VLProjector, let limit = options["max-tokens"].flatMap({ Int($0) }) {
            projector = try Qwen2VLProjector(url: url, tokenLimits: 8...limit)
        }
        let image = try PNGDecoder().decode(contentsOf: imagePath)
        let compute = ComputeContext(threads: threads)
        var tokens = try projector.imageTokens(for: image, compute: compute)  // warm-up: pages the mapped weights in
        let time = try timed(repeats) { tokens = try projector.imageTokens(for: image, compute: compute) }
        let views = tokens.chunks.filter { if case .embeddings = $0 { true } else { false } }.count
        print(String(format: "projector %@: %d tokens in %d views, best %.3f s, median %.3f s, CPU %.3f s (%d threads)",
                     projector.projectorType, tokens.embeddingCount, views, time.best, time.median, time.cpu, threads))
    } catch {
        FileHandle.standardError.write("vlmbench projector: \(error)\n".data(using: .utf8)!)
        exit(1)
    }
}
