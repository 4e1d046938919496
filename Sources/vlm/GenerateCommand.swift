import ArgumentParser
import Foundation
import VLMWire

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with a GGUF language model, streaming tokens as they are decoded.")

    @OptionGroup var options: DaemonOptions

    @Option(help: "A GGUF language model file.")
    var lm: String

    @Flag(help: "Wrap the prompt in the model's chat template as a user message.")
    var chat = false

    @Option(help: "Most tokens to generate.")
    var maxTokens = 128

    @Option(help: "Sampling temperature (0: greedy).")
    var temperature: Float = 0

    @Option(help: "Top-k (0: off).")
    var topK = 0

    @Option(help: "Top-p (1: off).")
    var topP: Float = 1

    @Option(help: "Min-p (0: off).")
    var minP: Float = 0

    @Option(help: "Repetition penalty (1: off).")
    var repetitionPenalty: Float = 1

    @Option(help: "Random seed for sampling.")
    var seed: UInt64 = 0

    @Option(help: "Stop string (repeatable).")
    var stop: [String] = []

    @Option(help: "KV-cache length in tokens.")
    var contextLength: Int?

    @Argument(help: "The prompt.")
    var prompt: String

    func run() async throws {
        let session = try await Session.start(options)
        var load: [String: JSONValue] = ["kind": "gguf", "path": .string(URL(fileURLWithPath: lm).standardizedFileURL.path)]
        if let contextLength { load["contextLength"] = .int(Int64(contextLength)) }
        let model = try await session.run(Method.modelsLoad, params: .object(load))["id"] ?? .null
        let json = options.json
        let result = try await session.run(Method.generate, params: [
            "model": model, "prompt": .string(prompt), "chat": .bool(chat), "maxTokens": .int(Int64(maxTokens)),
            "temperature": .double(Double(temperature)), "topK": .int(Int64(topK)), "topP": .double(Double(topP)),
            "minP": .double(Double(minP)), "repetitionPenalty": .double(Double(repetitionPenalty)),
            "seed": .int(Int64(bitPattern: seed)), "stop": .array(stop.map { .string($0) }),
        ]) { token in
            if json {
                printJSON(["event": "token", "index": token["index"] ?? .null, "id": token["id"] ?? .null, "text": token["text"] ?? .null])
            } else if let text = token["text"]?.stringValue {
                FileHandle.standardOutput.write(Data(text.utf8))
            }
        }
        await session.close()
        if json {
            var final = result.objectValue ?? [:]
            final["event"] = "result"
            printJSON(.object(final))
        } else {
            print("")
            if !options.quiet, let timings = result["timings"] {
                let stopReason = result["stopReason"]?.stringValue ?? ""
                let rate = timings["generatedTokensPerSecond"]?.doubleValue ?? 0
                FileHandle.standardError.write(Data(String(format: "[%@, %.1f tokens/s]\n", stopReason, rate).utf8))
            }
        }
    }
}
