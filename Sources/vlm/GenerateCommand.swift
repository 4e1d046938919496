import ArgumentParser
import Foundation
import VLMWire

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with a GGUF language model, streaming tokens as they are decoded.",
        discussion: """
            With --image and --question (and --clip DIR or --mmproj FILE), reasons about the image in stages (SUMMARY, CAPTION, \
            REASONING, CONCLUSION) with patch-attribution maps: generate-with-visual-selection.
            """)

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

    @Argument(help: "The prompt (text generation).")
    var prompt: String?

    @Option(help: "A PNG image to reason about (visual reasoning).")
    var image: String?

    @Option(help: "The question about --image.")
    var question: String?

    @Option(help: "An open_clip model directory (visual reasoning, composed CLIP + LM path).")
    var clip: String?

    @Option(help: "A LLaVA mmproj GGUF (visual reasoning, LLaVA path; instead of --clip).")
    var mmproj: String?

    @Option(help: "Candidates per stage for stage-level beam search (1: plain decoding).")
    var beam = 1

    @Option(help: "Patch selection after each reasoning step: topk, box or off.")
    var select = "box"

    @Option(help: "Write heatmap PNGs (image + attribution overlay) into this directory.")
    var heatmaps: String?

    func validate() throws {
        if image != nil || question != nil {
            guard image != nil, question != nil, (clip == nil) != (mmproj == nil) else {
                throw ValidationError("visual reasoning needs --image, --question and one of --clip DIR or --mmproj FILE")
            }
            guard prompt == nil else { throw ValidationError("give a PROMPT or --image/--question, not both") }
        } else if prompt == nil {
            throw ValidationError("give a PROMPT (or --image IMG --question Q --clip DIR)")
        }
    }

    func run() async throws {
        if let image, let question { return try await reason(image: image, question: question) }
        let prompt = self.prompt ?? ""
        let session = try await Session.start(options)
        let model = try await session.loadModelID(kind: "gguf", path: lm, contextLength: contextLength)
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

    /// generate-with-visual-selection, rendered live: stage headers, streamed tokens of the chosen
    /// candidate, one line per attribution and look.
    private func reason(image: String, question: String) async throws {
        let session = try await Session.start(options)
        var seer: [String: JSONValue] = [:]
        if let clip { seer["clip"] = .string(try await session.loadCLIP(clip)) }
        if let mmproj { seer["mmproj"] = try await session.loadModelID(kind: "mmproj", path: mmproj) }
        let lmID = try await session.loadModelID(kind: "gguf", path: lm, contextLength: contextLength)
        var params: [String: JSONValue] = seer.merging([
            "lm": lmID, "image": ["path": .string(absolute(image))], "question": .string(question),
            "beam": .int(Int64(beam)), "select": .string(select), "maxTokensPerStage": .int(Int64(maxTokens)),
            "temperature": .double(Double(temperature == 0 && beam > 1 ? 0.7 : temperature)), "seed": .int(Int64(bitPattern: seed)),
        ]) { first, _ in first }
        if let heatmaps { params["heatmapDir"] = .string(absolute(heatmaps)) }
        let json = options.json
        let result = try await session.run(Method.generateWithVisualSelection, params: .object(params)) { event in
            if json { printJSON(event); return }
            renderReasoningEvent(event, beam: beam)
        }
        await session.close()
        if json { printJSON(result); return }
        print("\nanswer: \(result["answer"]?.stringValue ?? "")")
    }
}

/// Live terminal rendering of reasoning events. With a beam, only candidate 0's tokens are echoed;
/// the chosen text is printed when the stage ends.
func renderReasoningEvent(_ event: JSONValue, beam: Int) {
    func out(_ text: String) { FileHandle.standardOutput.write(Data(text.utf8)) }
    switch event["event"]?.stringValue {
    case "stage":
        if event["phase"] == "begin" { out("\n== \(event["stage"]?.stringValue ?? "") ==\n") }
        else if beam > 1 { out("\n[chosen] \(event["text"]?.stringValue ?? "")\n") }
    case "token":
        if beam == 1 || event["candidate"] == .int(0) { out(event["text"]?.stringValue ?? "") }
    case "evidence":
        out("\n  [evidence] \(event["evidence"]?["text"]?.stringValue ?? "")")
    case "attribution":
        let a = event["attribution"]
        var line = "\n  [attribution step \(a?["step"]?.intValue ?? 0): \(a?["gridHeight"]?.intValue ?? 0)x\(a?["gridWidth"]?.intValue ?? 0) grid"
        if let box = a?["selection"]?["pixelBox"] {
            line += ", looks at x \(box["x"]?.intValue ?? 0) y \(box["y"]?.intValue ?? 0) \(box["width"]?.intValue ?? 0)x\(box["height"]?.intValue ?? 0)"
        }
        if let path = a?["heatmapPath"]?.stringValue { line += ", heatmap \(path)" }
        out(line + "]\n")
    case "look":
        out("  [look] \(event["evidence"]?["text"]?.stringValue ?? "")\n")
    case "verdict":
        let v = event["verdict"]
        out("\n  [judge] \(v?["first"]?.intValue ?? 0) vs \(v?["second"]?.intValue ?? 0): \(v?["winner"]?.intValue ?? 0) wins")
    default:
        break
    }
}
