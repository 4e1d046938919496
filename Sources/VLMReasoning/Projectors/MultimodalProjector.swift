// What an image becomes in a language model's context. A projector file (llama.cpp's mmproj GGUF)
// declares its type in `clip.projector_type`; each type has its own tower, its own preprocessing
// (one view, or tiles plus a global view) and its own text layout around the image tokens, exactly as
// llama.cpp's `mtmd` builds them. Callers (plain multimodal `generate`, visual reasoning) only see the
// ordered chunks.
import Foundation
import VLMImage
import VLMLanguage
import VLMTensor

/// One piece of an image's place in the context, in order.
public enum ImageChunk: Sendable {
    /// Text around or between image tokens (tile markers such as `<row_1_col_1>`), tokenised with
    /// special tokens parsed, as mtmd tokenises its marker text.
    case text(String)
    /// `count` image-token embeddings, row-major, of the projector's output width.
    case embeddings([Float], count: Int)
}

/// An encoded image: the chunks it contributes to the context.
public struct ImageTokens: Sendable {
    public var chunks: [ImageChunk]
    /// How the language model places each embeddings chunk: its attention (gemma3 in mtmd: the chunk's
    /// tokens see each other both ways) and its token grid (M-RoPE positions for qwen2vl models).
    public var layout: EmbeddingLayout

    public init(chunks: [ImageChunk], layout: EmbeddingLayout = EmbeddingLayout()) {
        self.chunks = chunks
        self.layout = layout
    }

    /// Image-token embeddings across all chunks (the count `imageTokens` reports).
    public var embeddingCount: Int {
        chunks.reduce(0) { total, chunk in
            if case let .embeddings(_, count) = chunk { return total + count }
            return total
        }
    }

    /// The language model's prompt segments for these chunks.
    public func segments(tokenizer: Tokenizer) -> [PromptSegment] {
        chunks.map { chunk in
            switch chunk {
            case let .text(text): .tokens(tokenizer.encode(text, addSpecial: false, parseSpecial: true))
            case let .embeddings(values, count): .embeddings(values, count: count, layout: layout)
            }
        }
    }
}

/// An image's tokens and each token's pixels in it: what a map of attention to the tokens lies on.
public struct LocatedImageTokens: Sendable {
    public var tokens: ImageTokens
    public var geometry: ImageTokenGeometry

    public init(tokens: ImageTokens, geometry: ImageTokenGeometry) { (self.tokens, self.geometry) = (tokens, geometry) }
}

/// A vision tower plus projector that turns an image into language-model context.
public protocol MultimodalProjector: AnyObject, Sendable {
    /// `clip.projector_type` of the file ("mlp" for LLaVA-1.5, "idefics3", ...).
    var projectorType: String { get }
    /// Width of the image-token embeddings; must equal the language model's embedding width.
    var outputWidth: Int { get }
    /// Preprocesses and encodes `image` into its chunks.
    func imageTokens(for image: RGBImage, compute: ComputeContext) throws -> ImageTokens
    /// Where each image token of a `width` x `height` image comes from (ImageTokenGeometry.swift).
    /// Default: none stated (no regions), and attribution (reasoning's and `generate`'s) lays every token on
    /// the whole image.
    func tokenGeometry(width: Int, height: Int) -> ImageTokenGeometry
}

extension MultimodalProjector {
    public func tokenGeometry(width: Int, height: Int) -> ImageTokenGeometry {
        .wholeImage(width: width, height: height, tokens: 0)
    }

    /// `tokenGeometry` when it states `count` tokens; otherwise (no geometry stated) every token on the whole image.
    public func tokenGeometry(width: Int, height: Int, count: Int) -> ImageTokenGeometry {
        let stated = tokenGeometry(width: width, height: height)
        return stated.tokenRegions.count == count ? stated : .wholeImage(width: width, height: height, tokens: count)
    }

    /// `imageTokens(for:)` with each token's pixels in `image` beside them, so that attention to the
    /// tokens can be laid on the image later without the image (from a cache of tokens).
    public func locatedImageTokens(for image: RGBImage, compute: ComputeContext) throws -> LocatedImageTokens {
        let tokens = try imageTokens(for: image, compute: compute)
        return LocatedImageTokens(tokens: tokens, geometry: tokenGeometry(width: image.width, height: image.height, count: tokens.embeddingCount))
    }

    /// Checks the projector feeds a language model of width `width`.
    public func checkCompatible(languageModelWidth width: Int) throws {
        guard width == outputWidth else { throw MMProjError.widthMismatch(projector: outputWidth, languageModel: width) }
    }
}

/// Opens a projector file by its declared type.
public enum MultimodalProjectors {
    /// Projector types this runtime loads.
    public static let supportedTypes = ["mlp", "idefics3", "gemma3"] + Qwen2VLProjector.fileTypes

    /// `tokenLimits`: how many tokens an image may become, for the types that size images dynamically
    /// (Qwen2-VL's; mtmd's image_min_tokens...image_max_tokens); the fixed-size types have no such choice.
    public static func load(url: URL, tokenLimits: ClosedRange<Int>? = nil) throws -> any MultimodalProjector {
        try load(gguf: GGUFFile(url: url), tokenLimits: tokenLimits)
    }

    /// The projector of an opened file: its type and its weights come from the same bytes, read once.
    public static func load(gguf: GGUFFile, tokenLimits: ClosedRange<Int>? = nil) throws -> any MultimodalProjector {
        let type = try MMProjHyperparameters.projectorType(gguf)
        switch type {
        case "mlp": return try LLaVAVisionTower(gguf: gguf)
        case "idefics3": return try Idefics3Projector(gguf: gguf)
        case "gemma3": return try Gemma3Projector(gguf: gguf)
        case _ where Qwen2VLProjector.fileTypes.contains(type): return try Qwen2VLProjector(gguf: gguf, tokenLimits: tokenLimits ?? Qwen2VLProjector.defaultTokenLimits)
        default:
            throw MMProjError.notSupported("projector type '\(type)' (supported: \(supportedTypes.joined(separator: ", ")))")
        }
    }
}
