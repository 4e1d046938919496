import ArgumentParser
import Foundation
import VLMWire

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with a GGUF language model, streaming tokens as they are decoded.",
        discussion: """
            With --mmproj FILE and --image IMG (repeatable), the images go into the prompt as llama-mtmd-cli puts them: at each \
            <__media__> marker in PROMPT, in order, or after its text when it has none.
            With --image and --question (and --clip DIR or --mmproj FILE), reasons about the image in stages (SUMMARY, CAPTION, \
            REASONING, CONCLUSION) with patch-attribution maps: generate-with-visual-selection.
            """)

    @OptionGroup var options: DaemonOptions

    @Option(help: "A GGUF language model file.")
    var lm: String

    @Flag(help: "Wrap the prompt in the model's chat template as a user message.")
    var chat = false

    @Flag(help: "Read special-token text in the prompt (e.g. <start_of_turn>) as those tokens, as llama.cpp's tokenize with special=true.")
    var parseSpecial = false

    @Option(parsing: .unconditional, help: "Most tokens to generate.")
    var maxTokens = 128

    @Option(parsing: .unconditional, help: "Sampling temperature (0: greedy).")
    var temperature: Float = 0

    @Option(parsing: .unconditional, help: "Top-k (0: off).")
    var topK = 0

    @Option(parsing: .unconditional, help: "Top-p (1: off).")
    var topP: Float = 1

    @Option(parsing: .unconditional, help: "Min-p (0: off).")
    var minP: Float = 0

    @Option(parsing: .unconditional, help: "Repetition penalty (1: off).")
    var repetitionPenalty: Float = 1

    @Option(parsing: .unconditional, help: "Random seed for sampling.")
    var seed: UInt64 = 0

    @Option(help: "Stop string (repeatable).")
    var stop: [String] = []

    @Option(parsing: .unconditional, help: "KV-cache length in tokens.")
    var contextLength: Int?

    @Argument(help: "The prompt (text generation).")
    var prompt: String?

    @Option(help: "A PNG image for the prompt (repeatable; with --mmproj), or to reason about (with --question).")
    var image: [String] = []

    @Flag(help: "With images: also return, per sentence of the answer, its attention to the image tokens (JSON).")
    var attribution = false

    @Option(help: "The question about --image.")
    var question: String?

    @Option(help: "An open_clip model directory (visual reasoning, composed CLIP + LM path).")
    var clip: String?

    @Option(help: "An mmproj GGUF (llama.cpp's vision projector) for --image; for visual reasoning, a LLaVA one instead of --clip.")
    var mmproj: String?

    @Option(parsing: .unconditional, help: "With --mmproj of a dynamic-resolution projector (Qwen2-VL, Qwen2.5-VL): the fewest image tokens an image becomes (default 8).")
    var imageMinTokens: Int?

    @Option(parsing: .unconditional, help: "With --mmproj of a dynamic-resolution projector (Qwen2-VL, Qwen2.5-VL): the most image tokens an image becomes (default 4096).")
    var imageMaxTokens: Int?

    @Option(parsing: .unconditional, help: "Candidates per stage for stage-level beam search (1: plain decoding).")
    var beam = 1

    @Option(help: "Patch selection after each reasoning step: topk, box or off.")
    var select = "box"

    @Option(help: "Write a heatmap PNG per reasoning step and an index.html contact sheet into this directory.")
    var heatmaps: String?

    func validate() throws {
        if question != nil || clip != nil {
            guard image.count == 1, question != nil, (clip == nil) != (mmproj == nil) else {
                throw ValidationError("visual reasoning needs one --image, --question and one of --clip DIR or --mmproj FILE")
            }
            guard prompt == nil else { throw ValidationError("give a PROMPT or --image/--question, not both") }
        } else if !image.isEmpty || mmproj != nil {
            guard mmproj != nil, prompt != nil else {
                throw ValidationError("images in a prompt need --mmproj FILE and a PROMPT (or --question Q for visual reasoning)")
            }
        } else if prompt == nil {
            throw ValidationError("give a PROMPT (or --image IMG --question Q --clip DIR)")
        }
        try require(!attribution || !image.isEmpty && question == nil, "--attribution needs --mmproj, --image and a PROMPT")
        try require(maxTokens >= 1, "--max-tokens must be at least 1, got \(maxTokens)")
        try require(temperature >= 0, "--temperature must be ≥ 0 (0: greedy), got \(temperature)")
        try require(topK >= 0, "--top-k must be ≥ 0 (0: off), got \(topK)")
        try require(topP > 0 && topP <= 1, "--top-p must be in (0, 1] (1: off), got \(topP)")
        try require(minP >= 0 && minP < 1, "--min-p must be in [0, 1) (0: off), got \(minP)")
        try require(repetitionPenalty > 0, "--repetition-penalty must be > 0 (1: off), got \(repetitionPenalty)")
        try require(contextLength.map { $0 >= 1 } ?? true, "--context-length must be at least 1")
        try require((1...8).contains(beam), "--beam must be in 1...8, got \(beam)")
        try require(mmproj != nil || imageMinTokens == nil && imageMaxTokens == nil, "--image-min-tokens and --image-max-tokens need --mmproj")
    }

    /// The --mmproj file loaded with the image token limits asked for; its id.
    private func loadProjector(_ session: Session) async throws -> String? {
        guard let mmproj else { return nil }
        let params = ModelsLoadParams(kind: "mmproj", path: absolute(mmproj), imageMinTokens: imageMinTokens, imageMaxTokens: imageMaxTokens)
        return try await session.send(ModelsLoadRequest.self, params).id
    }

    func run() async throws {
        if let image = image.first, let question { return try await reason(image: image, question: question) }
        let prompt = self.prompt ?? ""
        let session = try await Session.start(options)
        let projector = try await loadProjector(session)
        let model = try await session.loadModelID(kind: "gguf", path: lm, contextLength: contextLength)
        let json = options.json
        let params = GenerateParams(
            model: model, prompt: prompt, chat: chat, parseSpecial: parseSpecial, maxTokens: maxTokens, temperature: temperature,
            topK: topK, topP: topP, minP: minP, repetitionPenalty: repetitionPenalty, seed: seed, stop: stop,
            images: image.isEmpty ? nil : image.map { ImageInput(path: absolute($0)) }, mmproj: projector,
            attribution: attribution ? true : nil)
        let result = try await session.send(GenerateRequest.self, params, onPartial: { token in
            if json {
                Terminal.json(["event": "token", "index": .int(Int64(token.index)), "id": .int(Int64(token.id)), "text": .string(token.text)])
            } else {
                Terminal.text(token.text)
            }
        }, onCancelled: { sofar in
            // Text mode has streamed every token already; JSON gets the final object, marked.
            guard json, var final = sofar.objectValue else { return }
            final["event"] = "cancelled"
            Terminal.json(.object(final))
        })
        await session.close()
        if json {
            var final = try JSONCoding.value(of: result).objectValue ?? [:]
            final["event"] = "result"
            Terminal.json(.object(final))
        } else {
            Terminal.finishLine()
            if !options.quiet {
                Terminal.note(String(format: "[%@, %.1f tokens/s]", result.stopReason, result.timings.generatedTokensPerSecond))
            }
        }
    }

    /// generate-with-visual-selection, rendered live (see `ReasoningRenderer`).
    private func reason(image: String, question: String) async throws {
        let session = try await Session.start(options)
        var clipID: String?
        if let clip { clipID = try await session.loadCLIP(clip) }
        let mmprojID = try await loadProjector(session)
        let lmID = try await session.loadModelID(kind: "gguf", path: lm, contextLength: contextLength)
        let heatmapDirectory = try heatmaps.map(prepareHeatmapDirectory)
        let params = VisualReasoningParams(
            clip: clipID, lm: lmID, mmproj: mmprojID, image: ImageInput(path: absolute(image)), question: question, beam: beam,
            select: select, maxTokensPerStage: maxTokens, temperature: temperature == 0 && beam > 1 ? 0.7 : temperature, seed: seed,
            heatmapDir: heatmapDirectory)
        let json = options.json
        let renderer = ReasoningRenderer(beam: beam)
        let result = try await session.send(VisualReasoningRequest.self, params, onPartial: { event in
            if json { Terminal.json(event) } else { renderer.render(event) }
        }, onCancelled: { sofar in
            if json, sofar != .null { Terminal.json(sofar) }
        })
        await session.close()
        if let heatmapDirectory {
            let steps = result.steps.compactMap(\.attribution)
            let page = try HeatmapIndex.write(title: question, attributions: steps, in: heatmapDirectory)
            if !json { Terminal.finishLine(); Terminal.line("contact sheet: \(page)") }
        }
        if json { Terminal.json(result); return }
        Terminal.finishLine()
        Terminal.line("\nanswer: \(result.answer)")
    }
}

/// Throws a usage error with `message` unless `condition` holds.
func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    guard condition else { throw ValidationError(message()) }
}

/// Live terminal rendering of reasoning events; every stage's text appears once, the chosen one.
/// Without a beam the tokens stream as they are decoded. With a beam, the candidates being written
/// and the judge's verdicts show on the progress line, and the chosen text is printed when the
/// stage ends. An attribution names the region it selects; "looks at" appears only for a look.
final class ReasoningRenderer: @unchecked Sendable {
    let beam: Int
    private var stage = ""
    private var candidates: [Int: String] = [:]

    init(beam: Int) { self.beam = beam }

    func render(_ event: VisualReasoningEvent) {
        switch event.event {
        case "stage":
            stageEvent(event)
        case "token":
            token(event)
        case "evidence":
            Terminal.finishLine()
            Terminal.line("  [evidence] \(event.evidence?.text ?? "")")
        case "attribution":
            Terminal.finishLine()
            Terminal.line(describeAttribution(event.attribution))
        case "look":
            Terminal.finishLine()
            Terminal.line("  [look] \(event.evidence?.text ?? "")")
        case "verdict":
            let v = event.verdict
            Terminal.progress("\(stage): judge \(v?.first ?? 0) vs \(v?.second ?? 0): \(v?.winner ?? 0) wins")
        default:
            break
        }
    }

    private func stageEvent(_ event: VisualReasoningEvent) {
        if event.phase == "begin" {
            stage = event.stage ?? ""
            candidates = [:]
            Terminal.finishLine()
            Terminal.line("\n== \(stage) ==")
        } else if beam > 1 {
            Terminal.progress(nil)
            Terminal.line(event.text ?? "")
        } else {
            Terminal.finishLine()
        }
    }

    private func token(_ event: VisualReasoningEvent) {
        let text = event.text ?? ""
        guard beam > 1 else { return Terminal.text(text) }
        let candidate = event.candidate ?? 0
        candidates[candidate, default: ""] += text
        let latest = candidates[candidate, default: ""].replacingOccurrences(of: "\n", with: " ")
        Terminal.progress("\(stage): writing candidate \(candidate + 1)/\(beam): …\(latest.suffix(60))")
    }
}

func describeBox(_ box: BoxParam) -> String {
    "x \(box.x) y \(box.y) \(box.width)x\(box.height)"
}

func describeAttribution(_ a: AttributionInfo?) -> String {
    var line = "  [attribution step \(a?.step ?? 0): \(a?.gridHeight ?? 0)x\(a?.gridWidth ?? 0) grid"
    if let selection = a?.selection { line += ", selects \(describeBox(selection.pixelBox))" }
    if let path = a?.heatmapPath { line += ", heatmap \(path)" }
    return line + "]"
}
