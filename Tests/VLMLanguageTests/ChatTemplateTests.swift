import Foundation
import Testing
@testable import VLMLanguage

/// Choosing between the file's template and the hard-coded formats, and what the prompt text becomes.
@Suite struct ChatTemplateTests {
    static func templateText(_ name: String) throws -> String {
        try String(contentsOf: JinjaParityTests.directory.appendingPathComponent(name + ".jinja"), encoding: .utf8)
    }

    static let conversations: [[ChatMessage]] = [
        [ChatMessage(role: "user", content: "Hi")],
        [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi")],
        [ChatMessage(role: "system", content: "S"), ChatMessage(role: "user", content: " a\n"),
         ChatMessage(role: "assistant", content: "b"), ChatMessage(role: "user", content: "c")],
    ]

    /// SmolLM2's own template, run by the interpreter, gives exactly what the hard-coded ChatML gave.
    @Test func smolLM2TemplateRendersLikeTheBuiltInChatML() throws {
        let template = try #require(ChatTemplate(template: try Self.templateText("smollm2")))
        #expect(template.source == .file && template.format == .chatML)
        #expect(template.defaultSystemMessage == "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        for messages in Self.conversations {
            for generationPrompt in [true, false] {
                #expect(try template.apply(messages, addGenerationPrompt: generationPrompt)
                        == template.renderBuiltIn(messages, addGenerationPrompt: generationPrompt))
            }
        }
    }

    @Test(.enabled(if: smolAvailable, smolMissing)) func smolLM2FileTemplateIsUsed() throws {
        let gguf = try GGUFFile(url: try #require(TestPaths.smolLM2))
        let (template, source) = ChatTemplate.resolve(gguf: gguf, vocabulary: try Vocabulary(gguf: gguf))
        #expect(source == "file")
        #expect(template?.format == .chatML)
        #expect(template?.specialTokens == ChatSpecialTokens(bos: "<|im_start|>", eos: "<|im_end|>"))
    }

    @Test func aFileWithoutTemplateHasNone() throws {
        let gguf = try GGUFFile(url: TestPaths.stories)
        let (template, source) = ChatTemplate.resolve(gguf: gguf, vocabulary: try Vocabulary(gguf: gguf))
        #expect(template == nil && source == "none")
    }

    /// Gemma 3 writes `<bos>` itself and its tokenizer adds one too: like llama.cpp, the text loses its copy.
    @Test func leadingBOSIsLeftToTheTokenizer() throws {
        let text = try Self.templateText("gemma-3-it")
        let messages = [ChatMessage(role: "user", content: "Hi")]
        let adds = try #require(ChatTemplate(template: text, specialTokens: ChatSpecialTokens(bos: "<bos>", eos: "<eos>", tokenizerAddsBOS: true)))
        let keeps = try #require(ChatTemplate(template: text, specialTokens: ChatSpecialTokens(bos: "<bos>", eos: "<eos>")))
        #expect(try keeps.apply(messages) == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")
        #expect(try adds.apply(messages) == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")
        #expect(adds.format == .jinja && adds.source == .file)
    }

    /// The template's own refusal reaches the caller of apply(); render() still gives a prompt.
    @Test func raiseExceptionReachesTheCaller() throws {
        let template = try #require(ChatTemplate(template: try Self.templateText("gemma-3-it")))
        let twoUsers = [ChatMessage(role: "user", content: "a"), ChatMessage(role: "user", content: "b")]
        #expect(throws: JinjaError.raised("Conversation roles must alternate user/assistant/user/assistant/...")) {
            try template.apply(twoUsers)
        }
        #expect(template.render(twoUsers) == "<|im_start|>user\na<|im_end|>\n<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\n")
    }

    @Test func unsupportedConstructFallsBackToTheFamilyFormat() throws {
        let template = try #require(ChatTemplate(template: "{% include 'chatml.j2' %}<|im_start|>"))
        #expect(template.format == .chatML)
        #expect(template.source == .fallback("unsupported: the 'include' tag"))
        #expect(template.source.description == "fallback: unsupported: the 'include' tag")
        #expect(template.render([ChatMessage(role: "user", content: "Hi")]) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    }

    @Test func templateRaisingOnAPlainConversationFallsBack() throws {
        let template = try #require(ChatTemplate(template: "{{ raise_exception('no') }}[INST]"))
        #expect(template.format == .llama2 && template.source == .fallback("raise_exception: no"))
        #expect(template.render([ChatMessage(role: "user", content: "Hi")]) == "<s>[INST] Hi [/INST]")
    }

    @Test func unknownFamilyThatCannotRenderIsUnusable() {
        #expect(ChatTemplate(template: "{{ messages[0].content + 1 }}") == nil)
        #expect(ChatTemplate(template: "{% macro %}") == nil)
    }
}
