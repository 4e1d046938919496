// Rendering a conversation into prompt text, for the template families recognised in
// `tokenizer.chat_template`. A Jinja interpreter is out of scope: the template text is only inspected
// to tell which well-known format it implements.

public struct ChatMessage: Sendable, Equatable {
    public var role: String  // "system", "user", "assistant"
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
}

public struct ChatTemplate: Sendable, Equatable {
    public enum Format: String, Sendable { case chatML, llama2 }
    public let format: Format
    /// ChatML templates that insert a system message when the conversation has none (SmolLM2 does).
    public let defaultSystemMessage: String?

    /// Recognises the template family from its text; nil when unknown.
    public init?(template: String) {
        if template.contains("<|im_start|>") {
            format = .chatML
            defaultSystemMessage = ChatTemplate.literalDefaultSystem(in: template)
        } else if template.contains("[INST]") {
            format = .llama2
            defaultSystemMessage = nil
        } else {
            return nil
        }
    }

    /// The quoted system text a ChatML template emits when messages[0] is not a system message.
    private static func literalDefaultSystem(in template: String) -> String? {
        let marker = "<|im_start|>system\n"
        guard template.contains("!= 'system'"), let start = template.range(of: marker),
              let end = template[start.upperBound...].range(of: "<|im_end|>") else { return nil }
        return String(template[start.upperBound..<end.lowerBound])
    }

    /// The prompt text. Parse it with `parseSpecial: true` so the markers become control tokens.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        switch format {
        case .chatML:
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
