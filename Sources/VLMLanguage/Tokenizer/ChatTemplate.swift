// Rendering a conversation into prompt text with the model's own `tokenizer.chat_template`, run by the
// Jinja interpreter in Template/ with the variables Hugging Face's apply_chat_template passes. When the
// interpreter cannot run a template (an unsupported construct, or it raises on a plain conversation),
// the hard-coded ChatML or Llama-2 format stands in if the template text is recognisably one of them.
import Foundation

public struct ChatMessage: Sendable, Equatable {
    public var role: String  // "system", "user", "assistant"
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
}

/// The special-token texts a template sees as `bos_token`/`eos_token`, and whether the tokenizer adds
/// them itself (then llama.cpp strips them from the rendered prompt so they are not doubled).
public struct ChatSpecialTokens: Sendable, Equatable {
    public var bos: String?
    public var eos: String?
    public var tokenizerAddsBOS = false
    public var tokenizerAddsEOS = false

    public init(bos: String? = nil, eos: String? = nil, tokenizerAddsBOS: Bool = false, tokenizerAddsEOS: Bool = false) {
        self.bos = bos
        self.eos = eos
        self.tokenizerAddsBOS = tokenizerAddsBOS
        self.tokenizerAddsEOS = tokenizerAddsEOS
    }

    public init(vocabulary v: Vocabulary) {
        self.init(bos: v.bos.map { v.texts[Int($0)] }, eos: v.eos.map { v.texts[Int($0)] },
                  tokenizerAddsBOS: v.addBOS, tokenizerAddsEOS: v.addEOS)
    }
}

public struct ChatTemplate: Sendable {
    /// The template family: ChatML and Llama-2 are recognised by their markers, `jinja` is any other.
    public enum Format: String, Sendable { case chatML, llama2, jinja }

    /// Where the prompt text comes from: the file's template run by the interpreter, or a hard-coded
    /// format standing in for it (with the reason).
    public enum Source: Sendable, Equatable, CustomStringConvertible {
        case file
        case fallback(String)
        public var description: String {
            switch self {
            case .file: return "file"
            case .fallback(let reason): return "fallback: \(reason)"
            }
        }
    }

    public let format: Format
    public let source: Source
    /// ChatML templates that insert a system message when the conversation has none (SmolLM2 does).
    public let defaultSystemMessage: String?
    public let specialTokens: ChatSpecialTokens
    private let program: JinjaTemplate?

    /// The template for `text`; nil when the interpreter cannot run it and it is no format vlmd knows.
    public init?(template text: String, specialTokens: ChatSpecialTokens = ChatSpecialTokens()) {
        guard case .success(let template) = ChatTemplate.load(text, specialTokens: specialTokens) else { return nil }
        self = template
    }

    /// The model's chat template and a description of its source for `models/load`: "file",
    /// "fallback: <reason>", "unusable: <reason>" (no template) or "none" (the file has no template).
    public static func resolve(gguf: GGUFFile, vocabulary: Vocabulary) -> (template: ChatTemplate?, source: String) {
        guard let text = try? gguf.string("tokenizer.chat_template") else { return (nil, "none") }
        switch load(text, specialTokens: ChatSpecialTokens(vocabulary: vocabulary)) {
        case .success(let template): return (template, template.source.description)
        case .failure(let reason): return (nil, "unusable: \(reason.message)")
        }
    }

    struct Unusable: Error { var message: String }

    private static func load(_ text: String, specialTokens: ChatSpecialTokens) -> Result<ChatTemplate, Unusable> {
        let family: Format? = text.contains("<|im_start|>") ? .chatML : text.contains("[INST]") ? .llama2 : nil
        let system = family == .chatML ? literalDefaultSystem(in: text) : nil
        do {
            let program = try JinjaTemplate(text)
            // A plain conversation must render: a template that fails on one would fail on every request.
            let probe = [ChatMessage(role: "user", content: "Hi"), ChatMessage(role: "assistant", content: "Hello."),
                         ChatMessage(role: "user", content: "Bye")]
            _ = try program.render(context(probe, addGenerationPrompt: true, specialTokens))
            return .success(ChatTemplate(format: family ?? .jinja, source: .file, defaultSystemMessage: system,
                                         specialTokens: specialTokens, program: program))
        } catch {
            let reason = "\(error)"
            guard let family else { return .failure(Unusable(message: reason)) }
            return .success(ChatTemplate(format: family, source: .fallback(reason), defaultSystemMessage: system,
                                         specialTokens: specialTokens, program: nil))
        }
    }

    private init(format: Format, source: Source, defaultSystemMessage: String?, specialTokens: ChatSpecialTokens, program: JinjaTemplate?) {
        self.format = format
        self.source = source
        self.defaultSystemMessage = defaultSystemMessage
        self.specialTokens = specialTokens
        self.program = program
    }

    /// The variables apply_chat_template gives a template: messages, add_generation_prompt, tools and
    /// documents (None), and the special tokens the model has.
    static func context(_ messages: [ChatMessage], addGenerationPrompt: Bool, _ specials: ChatSpecialTokens) -> [String: JinjaValue] {
        var context: [String: JinjaValue] = [
            "messages": .list(messages.map { .dict(JinjaDict([("role", .string($0.role)), ("content", .string($0.content))])) }),
            "add_generation_prompt": .bool(addGenerationPrompt), "tools": .none, "documents": .none,
        ]
        if let bos = specials.bos { context["bos_token"] = .string(bos) }
        if let eos = specials.eos { context["eos_token"] = .string(eos) }
        return context
    }

    /// The prompt text, or the template's own error (e.g. its raise_exception on roles that do not
    /// alternate). Parse it with `parseSpecial: true` so the markers become control tokens.
    public func apply(_ messages: [ChatMessage], addGenerationPrompt: Bool = true, now: Date = Date()) throws -> String {
        let text = try program.map { try $0.render(ChatTemplate.context(messages, addGenerationPrompt: addGenerationPrompt, specialTokens), now: now) }
            ?? renderBuiltIn(messages, addGenerationPrompt: addGenerationPrompt)
        return withoutTokenizerSpecials(text)
    }

    /// The prompt text; when the file's template refuses this conversation, the family's built-in
    /// format (ChatML for unrecognised families) renders it instead.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        (try? apply(messages, addGenerationPrompt: addGenerationPrompt))
            ?? withoutTokenizerSpecials(renderBuiltIn(messages, addGenerationPrompt: addGenerationPrompt))
    }

    /// llama.cpp drops a leading BOS (trailing EOS) the template wrote when the tokenizer adds its own.
    private func withoutTokenizerSpecials(_ text: String) -> String {
        var text = Substring(text)
        if specialTokens.tokenizerAddsBOS, let bos = specialTokens.bos, !bos.isEmpty, text.hasPrefix(bos) { text = text.dropFirst(bos.count) }
        if specialTokens.tokenizerAddsEOS, let eos = specialTokens.eos, !eos.isEmpty, text.hasSuffix(eos) { text = text.dropLast(eos.count) }
        return String(text)
    }

    /// The quoted system text a ChatML template emits when messages[0] is not a system message.
    private static func literalDefaultSystem(in template: String) -> String? {
        let marker = "<|im_start|>system\n"
        guard template.contains("!= 'system'"), let start = template.range(of: marker),
              let end = template[start.upperBound...].range(of: "<|im_end|>") else { return nil }
        return String(template[start.upperBound..<end.lowerBound])
    }

    /// The hard-coded formats.
    func renderBuiltIn(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
        switch format {
        case .chatML, .jinja:
            var out = ""
            if let system = defaultSystemMessage, messages.first?.role != "system" {
                out += "<|im_start|>system\n\(system)<|im_end|>\n"
            }
            for m in messages { out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
            if addGenerationPrompt { out += "<|im_start|>assistant\n" }
            return out
        case .llama2:
            // <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ...
            var out = "", system: String?
            for m in messages {
                switch m.role {
                case "system": system = m.content
                case "user":
                    let body = system.map { "<<SYS>>\n\($0)\n<</SYS>>\n\n" + m.content } ?? m.content
                    system = nil
                    out += "<s>[INST] \(body) [/INST]"
                default: out += " \(m.content) </s>"
                }
            }
            return out
        }
    }
}
