import Foundation
// vlmbench: model-level benchmarks. `bench/*.sh` run it beside the reference implementations.
//   vlmbench clip ARGS...   CLIP image/text encoding (CLIPBench.swift)
//   vlmbench lm ARGS...     language-model prefill/decode (LMBench.swift)
//   vlmbench gemm ARGS...   RN50's convolution products: OpenBLAS against packed weights (GEMMBench.swift)
//   vlmbench projector ARGS...  an image's encode through an mmproj projector (ProjectorBench.swift)
let args = Array(CommandLine.arguments.dropFirst())
switch args.first {
case "clip": runCLIPBench(Array(args.dropFirst()))
case "lm": runLMBench(Array(args.dropFirst()))
case "gemm": runGEMMBench(Array(args.dropFirst()))
case "projector": runProjectorBench(Array(args.dropFirst()))
default:
    FileHandle.standardError.write("usage: vlmbench clip|lm|gemm|projector ARGS...\n".data(using: .utf8)!)
    exit(2)
}
