// A prompt with images, laid out as llama.cpp's `llama-mtmd-cli` lays it out (tools/mtmd/mtmd-cli.cpp,
// single-turn mode, and mtmd.cpp's `mtmd_tokenize`):
//   1. the media marker `<__media__>` stands where each image goes, in order. A conversation whose
//      text has no marker gets one per image appended to the text of its last user message (mtmd-cli
//      appends them to the prompt: "build prompt content with correct number of markers");
//   2. with a chat template, the conversation is rendered first (the markers are plain text to it);
//   3. the text is cut at the markers; each piece is tokenised alone without BOS/EOS, the pieces and
//      the image's own text chunks (tile markers, begin/end tokens) run together into one token run;
//      BOS goes before the first run (a run of its own when an image comes first) and EOS after the
//      last, when the tokenizer adds them; each marker becomes that image's chunks.
import Foundation
import VLMLanguage

/// libmtmd's default media marker: where an image goes in prompt text.
public let mediaMarker = "<__media__>"

/// One piece of a message's content.
public enum ContentPiece<Image> {
    /// Text; any media markers in it stand for images given beside the conversation.
    case text(String)
    /// An image at this place in the content.
    case image(Image)
}

public struct MultimodalMessage<Image> {
    public var role: String
    public var content: [ContentPiece<Image>]
    public init(role: String, content: [ContentPiece<Image>]) { self.role = role; self.content = content }
}

/// Why a multimodal prompt cannot be built; each names what the caller gave.
public enum MultimodalPromptError: Error, Equatable, CustomStringConvertible {
    /// The text has `markers` media markers for `images` images given beside it.
    case markerCount(markers: Int, images: Int)
    /// Images to append but no user message to carry them.
    case noUserMessage
    /// The chat template rendered `rendered` markers for `expected` images (it dropped or repeated content).
    case templateMarkers(rendered: Int, expected: Int)

    public var description: String {
        switch self {
        case let .markerCount(markers, images):
            "the text has \(markers) \(mediaMarker) marker\(markers == 1 ? "" : "s") for \(images) image\(images == 1 ? "" : "s")"
        case .noUserMessage: "images need a user message to go in"
        case let .templateMarkers(rendered, expected):
            "the chat template rendered \(rendered) image markers for \(expected) images"
        }
    }
}

/// A conversation or raw prompt reduced to text with one marker per image, and the images in marker order.
public struct MultimodalPrompt<Image> {
    public let text: String
    public let images: [Image]

    /// A raw prompt: markers in `prompt` take `images` in order; with none, the images follow the text.
    public init(prompt: String, images: [Image]) throws {
        let message = try Self.placed([MultimodalMessage(role: "user", content: [.text(prompt)])], loose: images)
        text = message.messages[0].content
        self.images = message.images
    }

    /// A conversation rendered by `template`. Text markers take `images` in order; image pieces bring
    /// their own image at their place; with no image placed at all, `images` follow the last user message's text.
    public init(messages: [MultimodalMessage<Image>], images: [Image], template: ChatTemplate) throws {
        let placed = try Self.placed(messages, loose: images)
        let rendered = try template.apply(placed.messages)
        let markers = Self.markerCount(rendered)
        guard markers == placed.images.count else { throw MultimodalPromptError.templateMarkers(rendered: markers, expected: placed.images.count) }
        text = rendered
        self.images = placed.images
    }

    static func markerCount(_ text: String) -> Int { text.components(separatedBy: mediaMarker).count - 1 }

    /// The messages as text with markers, and every image in marker order.
    static func placed(_ messages: [MultimodalMessage<Image>], loose: [Image]) throws -> (messages: [ChatMessage], images: [Image]) {
        var remaining = loose[...]
        var ordered: [Image] = []
        var textMarkers = 0
        var flat: [ChatMessage] = []
        for message in messages {
            var content = ""
            for piece in message.content {
                switch piece {
                case let .text(text):
                    content += text
                    let count = markerCount(text)
                    textMarkers += count
                    ordered += remaining.prefix(count)
                    remaining = remaining.dropFirst(min(count, remaining.count))
                case let .image(image):
                    content += mediaMarker
                    ordered.append(image)
                }
            }
            flat.append(ChatMessage(role: message.role, content: content))
        }
        if ordered.isEmpty, textMarkers == 0, !loose.isEmpty {
            guard let last = flat.lastIndex(where: { $0.role == "user" }) else { throw MultimodalPromptError.noUserMessage }
            flat[last].content += String(repeating: mediaMarker, count: loose.count)
            return (flat, loose)
        }
        guard textMarkers == loose.count else { throw MultimodalPromptError.markerCount(markers: textMarkers, images: loose.count) }
        return (flat, ordered)
    }
}

/// Where the images sit in the laid-out context.
public struct MultimodalLayout: Sendable {
    public var segments: [PromptSegment]
    /// Per image, the context positions of its image-token embeddings (in order; tiles included).
    public var imagePositions: [[Range<Int>]]

    /// Positions the prompt fills.
    public var positionCount: Int { segments.reduce(0) { $0 + $1.positionCount } }

    /// The token ids of the prompt, image positions left out (what `promptTokenIds` reports).
    public var textTokens: [Int32] {
        segments.flatMap { segment -> [Int32] in
            if case let .tokens(tokens) = segment { return tokens }
            return []
        }
    }

    /// `text`, cut at its markers, with each marker replaced by `images[i]`'s chunks, as `mtmd_tokenize` does.
    /// - Parameters:
    ///   - addSpecial: add BOS/EOS as the tokenizer declares (mtmd-cli: on the conversation's first turn).
    ///   - parseSpecial: read control-token text in the pieces as those tokens (mtmd-cli: always).
    public init(text: String, images: [ImageTokens], tokenizer: Tokenizer, addSpecial: Bool, parseSpecial: Bool) throws {
        let pieces = text.components(separatedBy: mediaMarker)
        guard pieces.count - 1 == images.count else {
            throw MultimodalPromptError.markerCount(markers: pieces.count - 1, images: images.count)
        }
        var builder = LayoutBuilder()
        for (index, piece) in pieces.enumerated() {
            builder.append(tokens: tokenizer.encode(piece, addSpecial: false, parseSpecial: parseSpecial))
            guard index < images.count else { continue }
            builder.beginImage()
            for segment in images[index].segments(tokenizer: tokenizer) {
                switch segment {
                case let .tokens(tokens): builder.append(tokens: tokens)
                case let .embeddings(values, count, layout): builder.append(embeddings: values, count: count, layout: layout)
                }
            }
        }
        let vocabulary = tokenizer.vocabulary
        if addSpecial, vocabulary.addBOS, let bos = vocabulary.bos { builder.prepend(token: bos) }
        if addSpecial, vocabulary.addEOS, let eos = vocabulary.eos { builder.append(tokens: [eos]) }
        segments = builder.segments
        imagePositions = builder.imagePositions
    }
}

/// Accumulates segments, running adjacent text together as mtmd's chunk list does.
private struct LayoutBuilder {
    var segments: [PromptSegment] = []
    var imagePositions: [[Range<Int>]] = []
    private var position = 0

    mutating func append(tokens: [Int32]) {
        guard !tokens.isEmpty else { return }
        position += tokens.count
        if case let .tokens(previous)? = segments.last {
            segments[segments.count - 1] = .tokens(previous + tokens)
        } else {
            segments.append(.tokens(tokens))
        }
    }

    mutating func beginImage() { imagePositions.append([]) }

    mutating func append(embeddings: [Float], count: Int, layout: EmbeddingLayout) {
        imagePositions[imagePositions.count - 1].append(position..<(position + count))
        segments.append(.embeddings(embeddings, count: count, layout: layout))
        position += count
    }

    /// BOS at the very start: into the first text run, or a run of its own before an image.
    mutating func prepend(token: Int32) {
        if case let .tokens(first)? = segments.first {
            segments[0] = .tokens([token] + first)
        } else {
            segments.insert(.tokens([token]), at: 0)
        }
        imagePositions = imagePositions.map { $0.map { ($0.lowerBound + 1)..<($0.upperBound + 1) } }
        position += 1
    }
}
