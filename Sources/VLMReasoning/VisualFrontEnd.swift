// What the reasoning engine needs from a vision model, so that another front end (e.g. a LLaVA
// projector) can replace the CLIP one: text evidence about the image, a map of which patches a piece
// of text relates to, and evidence about a crop.
import VLMImage
import VLMWire
import VLMLanguage
import VLMTensor

/// A rectangle of pixels of the original image: `x..<x+width`, `y..<y+height`. A deliberate mirror of
/// the wire's BoxParam: its `description` is written into the model's context, which is the engine's
/// business, not the protocol's.
public struct PixelBox: Sendable, Equatable, CustomStringConvertible {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) { self.x = x; self.y = y; self.width = width; self.height = height }
    public var description: String { "x \(x), y \(y), \(width)x\(height)" }
}

/// One label with its probability among the label bank (reported to clients as computed).
public typealias LabelProbability = TagScore

/// Evidence the vision side contributes to the context, with the text the model reads.
public struct Evidence: Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        case wholeImage
        /// One of the fixed region crops, e.g. "top left".
        case region(name: String, box: PixelBox)
        /// A crop re-encoded because a reasoning step relied on it.
        case look(step: Int, box: PixelBox)
    }
    public var source: Source
    public var tags: [LabelProbability]
    /// As written into the context.
    public var text: String
}

/// A map over the vision grid that sums to 1.
public struct AttributionMap: Sendable, Equatable {
    public var gridHeight: Int
    public var gridWidth: Int
    /// Row-major, finite, non-negative, summing to 1.
    public var scores: [Float]
    /// How similarities were normalised, e.g. "softmax(T=0.01)" or "min-max".
    public var normalization: String

    public init(gridHeight: Int, gridWidth: Int, scores: [Float], normalization: String) {
        (self.gridHeight, self.gridWidth, self.scores, self.normalization) = (gridHeight, gridWidth, scores, normalization)
    }
}

/// Patches chosen from an attribution map.
public struct PatchSelectionResult: Sendable, Equatable {
    /// "topK" or "box".
    public var method: String
    /// Row-major indices of the chosen cells.
    public var cells: [Int]
    /// The cells' bounding box (for `box`, the box itself).
    public var gridBox: GridBox
    /// `gridBox` in original-image pixels.
    public var pixelBox: PixelBox
    /// Attribution mass inside `gridBox`.
    public var mass: Float
}

/// A vision model prepared for one image.
public protocol PreparedImage: AnyObject {
    var image: RGBImage { get }
    /// Rows and columns of the attribution grid (nil when this front end cannot attribute).
    var grid: (height: Int, width: Int)? { get }
    /// Evidence about the whole image and its fixed regions, for the evidence stage.
    func initialEvidence(compute: ComputeContext) throws -> [Evidence]
    /// Which grid cells `text` relates to; nil when this front end cannot attribute.
    func attribution(of text: String, compute: ComputeContext) throws -> AttributionMap?
    /// The original-image pixels a box of grid cells was computed from (inside the image).
    func pixelBox(of box: GridBox) -> PixelBox
    /// Evidence about a crop of the original image, re-encoded at the model's full resolution.
    func lookEvidence(at box: PixelBox, step: Int, compute: ComputeContext) throws -> Evidence
    /// Positions the language model reads before the prompt (e.g. LLaVA's image tokens); nil for a
    /// front end that gives the model text evidence only.
    var visualPrefix: VisualPrefix? { get }

    /// When set, a step is attributed by the language model's attention from the step's generated
    /// tokens to these positions, recorded during generation, instead of by `attribution(of:)`.
    var attentionReadout: AttentionReadout? { get }
    /// The map of `mass[i]`, the mean attention to the i-th position of `attentionReadout`.
    func attribution(attention mass: [Double]) -> AttributionMap?

    /// A crop of the original image encoded as chunks that join the reasoning context where the step
    /// that asked for them ended; nil for a front end that looks by text evidence (`lookEvidence`).
    func lookChunks(at box: PixelBox, step: Int, compute: ComputeContext) throws -> LookChunks?
    /// Records that `look`'s chunks start at context slot `slot`: their image tokens join `attentionReadout`.
    func place(_ look: LookChunks, at slot: Int)
}

/// A look's chunks for the context: marker tokens and image embeddings as the projector lays them.
public struct LookChunks: Sendable {
    public var evidence: Evidence
    public var segments: [PromptSegment]
    /// Each image token's pixels in the original image, in order.
    public var regions: [TokenRegion]
}

/// Which attention makes a step's map: the weights in `layers` to the image-token `positions`.
public struct AttentionReadout: Sendable, Equatable {
    public var layers: Set<Int>
    /// Context positions of the image tokens, in order.
    public var positions: [Range<Int>]
}

extension PreparedImage {
    public var visualPrefix: VisualPrefix? { nil }
    public var attentionReadout: AttentionReadout? { nil }
    public func attribution(attention mass: [Double]) -> AttributionMap? { nil }
    public func lookChunks(at box: PixelBox, step: Int, compute: ComputeContext) throws -> LookChunks? { nil }
    public func place(_ look: LookChunks, at slot: Int) {}
}

/// A vision model the engine can reason with.
public protocol VisualFrontEnd: AnyObject {
    /// Encodes `image` once for a run. Throws `ReasoningError.invalidImage` for images it cannot take.
    func prepare(_ image: RGBImage, precomputed: PrecomputedImageFeatures?, compute: ComputeContext) throws -> any PreparedImage
}

/// Image features a caller has already computed (e.g. cached by content digest), to skip re-encoding.
public struct PrecomputedImageFeatures: Sendable {
    /// The L2-normalised global embedding of the whole (preprocessed) image.
    public var globalEmbedding: [Float]?
    /// The per-position features of the same image (one image).
    public var dense: (gridHeight: Int, gridWidth: Int, features: [[Float]])?

    public init(globalEmbedding: [Float]? = nil, dense: (gridHeight: Int, gridWidth: Int, features: [[Float]])? = nil) {
        self.globalEmbedding = globalEmbedding
        self.dense = dense
    }
}
