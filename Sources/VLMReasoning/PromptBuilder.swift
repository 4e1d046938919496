// The text the language model reads: instructions and question, then the assistant turn the engine
// writes stage by stage (tags, evidence lines, chosen stage contents).
import VLMLanguage

struct PromptBuilder {
    let model: LanguageModel
    /// Everything before the assistant turn's content, rendered for the model's chat format.
    let prefix: String

    init(model: LanguageModel, stages: [StageSpecification], question: String) {
        self.model = model
        let instructions = Self.instructions(stages)
        let question = sanitized(question)
        if let template = model.chatTemplate {
            prefix = template.render([ChatMessage(role: "system", content: instructions),
                                      ChatMessage(role: "user", content: question)])
        } else {
            // A plain language model: the same content as a document to continue.
            prefix = instructions + "\n\nQuestion: " + question + "\nAnswer:\n"
        }
    }

    /// LLaVA-CoT's staged format, told to a model that sees the image only through evidence lines.
    static func instructions(_ stages: [StageSpecification]) -> String {
        var text = """
        You answer questions about an image. You cannot see the image: a vision model describes it in \
        lines in square brackets, giving labels with their probabilities. Answer in stages, each inside its tags:
        """
        // "<TAG>...</TAG>" rather than "<TAG>: ...": small models copy the colon into their answer.
        for stage in stages { text += "\n<\(stage.tag)>...</\(stage.tag)> \(stage.instruction)" }
        return text
    }

    /// Token ids of the prompt followed by `assistantText`.
    func tokens(_ assistantText: String) -> [Int32] {
        model.tokenize(prefix + assistantText, parseSpecial: true)
    }

    /// Token ids of assistant text that follows an image in the context (no BOS), tokenized on its own
    /// as mtmd tokenizes each text chunk.
    func continuation(_ assistantText: String) -> [Int32] {
        model.tokenizer.encode(assistantText, addSpecial: false, parseSpecial: true)
    }
}
