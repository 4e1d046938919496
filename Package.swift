// swift-tools-version: 6.1
// vlmd: a language-server-style daemon for vision-language models.
//
// Module map (arrows point one way: executables -> daemon -> models -> tensor core; VLMWire, which
// depends on nothing, is below them all). ARCHITECTURE.md follows one request through them.
//   VLMWire      JSON values, JSON-RPC envelopes, error codes, one type per method and its params/results
//   VLMRPC       LSP base-protocol framing, the stdio connection (reader, back-pressured writer)
//   VLMDaemon    lifecycle, dispatch, cancellation, progress, handlers, model registry
//   VLMMCP       the daemon as a Model Context Protocol server (tools over newline-delimited JSON-RPC)
//   VLMTensor    Float32 tensor core over OpenBLAS (+ quantised kernels for GGUF weights)
//   VLMTensorVNNI  AVX-512 VNNI quantised tiles that VLMTensor picks at run time (compiled for those CPUs)
//   CVLMBF16     AVX-512 BF16 (vdpbf16ps) tiles for bf16 image encoding, picked at run time by cpuid (C:
//                Swift cannot import the `__bf16`-typed intrinsics)
//   VLMImage     PNG decoding/encoding (libpng), CLIP preprocessing, CIFAR-format datasets
//   VLMVision    the image towers: the transformer encoder block, the ViT (open_clip and mmproj variants)
//                and the ModifiedResNet (RN50-style), configured by VLMCLIP / VLMReasoning
//   VLMCLIP      CLIP: tokenizer, checkpoints, image and text towers
//   VLMLanguage  GGUF language models: reader, decoder, tokenizers, sampling
//   VLMPromptLearning  few-shot prompt learning for CLIP (CoOp, projection, template banks, LM proposals)
//   VLMReasoning staged visual reasoning with patch attribution (LLaVA-CoT stages, beam search, looks)
//   VLMSelection a learned selection head over frozen CLIP features (text-conditioned cell maps)
//   vlmd / vlm   the daemon and the CLI client
//   vlmbench     model-level benchmarks (bench/), compared with the reference implementations
import PackageDescription

let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")

// Numeric modules are compiled with optimisation even in debug builds: `swift test` on real models
// (and the parity fixtures) would otherwise take minutes per forward pass. Bounds checks stay on.
// On x86-64 they target Haswell (AVX2 + FMA, 2013 and later): the quantised kernels reproduce ggml's
// fused multiply-adds exactly, and without hardware FMA each one is a libm call, several times slower.
#if arch(x86_64)
let numeric: [SwiftSetting] = [.unsafeFlags(["-O", "-target-cpu", "haswell"])]
// VLMTensorVNNI holds the kernels for CPUs with AVX-512 VNNI, chosen at run time by cpuid: compiled for
// the oldest such CPU so its intrinsics inline.
let vnni: [SwiftSetting] = [.unsafeFlags(["-O", "-target-cpu", "cascadelake"])]
#else
let numeric: [SwiftSetting] = [.unsafeFlags(["-O"])]
let vnni = numeric
#endif

let package = Package(
    name: "vlmd",
    products: [
        .executable(name: "vlmd", targets: ["vlmd"]),
        .executable(name: "vlm", targets: ["vlm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        .target(name: "VLMWire"),
        .target(name: "VLMRPC", dependencies: ["VLMWire"]),
        .target(name: "VLMTensorVNNI", swiftSettings: vnni),
        // Optimised in debug builds too, like the numeric Swift modules; the AVX-512 BF16 target is set per function.
        .target(name: "CVLMBF16", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "VLMTensor", dependencies: ["COpenBLAS", "VLMTensorVNNI", "CVLMBF16"], swiftSettings: numeric),
        .target(name: "VLMImage", dependencies: ["CPNG"], swiftSettings: numeric),
        .target(name: "VLMVision", dependencies: ["VLMTensor"], swiftSettings: numeric),
        .target(name: "VLMCLIP", dependencies: ["VLMTensor", "VLMImage", "VLMVision", "CZlib"], resources: [.copy("Resources")],
                swiftSettings: numeric),
        .target(name: "VLMLanguage", dependencies: ["VLMTensor"], swiftSettings: numeric),
        // The engines share their plain result values with the protocol (VLMWire depends on nothing).
        .target(name: "VLMPromptLearning", dependencies: ["VLMWire", "VLMTensor", "VLMImage", "VLMCLIP", "VLMLanguage"], swiftSettings: numeric),
        .target(name: "VLMReasoning", dependencies: ["VLMWire", "VLMTensor", "VLMImage", "VLMVision", "VLMCLIP", "VLMLanguage"], swiftSettings: numeric),
        .target(name: "VLMSelection", dependencies: ["VLMTensor", "VLMImage", "VLMCLIP"], swiftSettings: numeric),
        .target(name: "VLMDaemon", dependencies: [
            "VLMWire", "VLMRPC", "VLMTensor", "VLMImage", "VLMCLIP", "VLMLanguage", "VLMPromptLearning", "VLMReasoning", "VLMSelection",
        ]),

        // The tool schemas are the protocol schema's (Resources/vlmd.schema.json links to protocol/).
        .target(name: "VLMMCP", dependencies: ["VLMDaemon", "VLMRPC", "VLMWire"],
                resources: [.embedInCode("Resources/vlmd.schema.json")]),

        .executableTarget(name: "vlmd", dependencies: ["VLMDaemon", "VLMMCP", "VLMRPC", argumentParser]),
        .executableTarget(name: "vlm", dependencies: ["VLMWire", "VLMRPC", argumentParser]),
        .executableTarget(
            name: "vlmbench", dependencies: ["VLMTensor", "VLMImage", "VLMCLIP", "VLMLanguage", "VLMReasoning"],
            path: "bench/Sources/vlmbench"),

        .testTarget(name: "VLMWireTests", dependencies: ["VLMWire"]),
        .testTarget(name: "VLMRPCTests", dependencies: ["VLMRPC"]),
        .testTarget(name: "VLMDaemonTests", dependencies: ["VLMDaemon", "VLMRPC", "VLMWire", "VLMImage", "VLMReasoning", "VLMPromptLearning"]),
        .testTarget(name: "VLMMCPTests", dependencies: ["VLMMCP", "VLMWire"]),
        .testTarget(name: "VLMTensorTests", dependencies: ["VLMTensor"]),
        .testTarget(name: "VLMVisionTests", dependencies: ["VLMVision", "VLMTensor"], exclude: ["Fixtures"]),
        .testTarget(name: "VLMImageTests", dependencies: ["VLMImage"], exclude: ["Fixtures"]),
        .testTarget(name: "VLMCLIPTests", dependencies: ["VLMCLIP", "VLMVision", "VLMTensor"], exclude: ["Fixtures"]),
        .testTarget(name: "VLMLanguageTests", dependencies: ["VLMLanguage", "VLMTensor"], exclude: ["Fixtures"]),
        .testTarget(
            name: "VLMPromptLearningTests", dependencies: ["VLMPromptLearning", "VLMCLIP", "VLMTensor", "VLMImage", "VLMLanguage"],
            exclude: ["Fixtures"]),
        .testTarget(name: "VLMSelectionTests", dependencies: ["VLMSelection", "VLMTensor"], exclude: ["Fixtures"]),
        .testTarget(
            name: "VLMReasoningTests", dependencies: ["VLMReasoning", "VLMCLIP", "VLMLanguage", "VLMImage"],
            exclude: ["Fixtures"]),
    ]
)
