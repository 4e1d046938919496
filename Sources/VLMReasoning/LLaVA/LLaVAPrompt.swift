// A prompt with images in it, as llama.cpp's `mtmd_tokenize` splits it: text around each media marker
// is tokenized on its own (special tokens parsed; BOS only before the first piece), and each marker
// becomes one image's projected tokens.
import VLMLanguage

public enum LLaVAPrompt {
    /// libmtmd's default media marker.
    public static let marker = "<__media__>"

    /// The segments of `prompt`, whose `marker`s are replaced in order by `images` (each [tokens][width]).
    public static func segments(_ prompt: String, images: [(embeddings: [Float], count: Int)], model: LanguageModel,
                                marker: String = LLaVAPrompt.marker) throws -> [PromptSegment] {
        let pieces = prompt.components(separatedBy: marker)
        guard pieces.count - 1 == images.count else {
            throw ReasoningError.invalidConfiguration("the prompt has \(pieces.count - 1) image markers for \(images.count) images")
        }
        var segments: [PromptSegment] = []
        for (i, piece) in pieces.enumerated() {
            // mtmd skips empty text pieces, except that the first still carries the BOS token.
            let tokens = model.tokenizer.encode(piece, addSpecial: i == 0, parseSpecial: true)
            if !tokens.isEmpty { segments.append(.tokens(tokens)) }
            if i < images.count { segments.append(.embeddings(images[i].embeddings, count: images[i].count)) }
        }
        return segments
    }
}
