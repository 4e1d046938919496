// The LLaVA-style front end: the image enters the language model's context as projected image tokens
// (BOS, then the image's tokens, then the prompt text), and a step is attributed to image patches by
// the language model's own attention from the step's tokens to the image-token positions.
//
// Attribution: the step's text is run after the visual prefix (BOS + image tokens + any looks) with
// attention weights recorded in the chosen layers (default: the last third); the weights from every
// step token and head of those layers to each image token are averaged, then renormalised over the
// image tokens. Image token i carries patch i+1 and the last one the class token (llama.cpp's row
// selection, see LLaVAVisionTower), so token i scores grid cell i+1 and the class token's share is
// spread evenly over all cells (it summarises the whole image); cell 0 gets only that even share.
// The step is read after the image alone, not after the whole transcript: the map is what the step's
// words look at in the image, and costs one short forward pass.
//
// Looks: the selected crop is preprocessed like a whole image, re-encoded, and its tokens are
// appended to the visual prefix; the reasoning context restarts from the longer prefix.
import Foundation
import VLMImage
import VLMLanguage
import VLMTensor

/// A prefilled language-model cache of what precedes the prompt text.
public struct VisualPrefix: Sendable {
    /// Keys and values of `leadingTokens`, the image tokens, and any looks' tokens.
    public var cache: KVCache
    /// Prompt tokens the prefix already holds at its start (the BOS token): dropped from the prompt.
    public var leadingTokens: [Int32]
    /// Changes whenever positions are appended, so holders of a copy know to restart from it.
    public var version: Int

    /// `prompt` without the leading tokens this prefix already holds.
    func textTokens(_ prompt: [Int32]) -> [Int32] {
        prompt.starts(with: leadingTokens) ? Array(prompt.dropFirst(leadingTokens.count)) : prompt
    }
}

/// Immutable after init (its models are read-only), so runs on several threads may share it.
public final class LLaVAFrontEnd: VisualFrontEnd, Sendable {
    public let tower: LLaVAVisionTower
    public let languageModel: LanguageModel
    /// Decoder layers whose attention makes the attribution maps.
    public let attentionLayers: [Int]

    /// - Parameter attentionLayers: decoder layers to average; default the last third (at least one).
    public init(tower: LLaVAVisionTower, languageModel: LanguageModel, attentionLayers: [Int]? = nil) throws {
        try tower.checkCompatible(languageModelWidth: languageModel.hyperparameters.embeddingLength)
        let layerCount = languageModel.hyperparameters.blockCount
        let layers = attentionLayers ?? Self.defaultAttentionLayers(blockCount: layerCount)
        guard !layers.isEmpty, layers.allSatisfy({ (0..<layerCount).contains($0) }) else {
            throw ReasoningError.invalidConfiguration("attention layers \(layers) for a \(layerCount)-layer model")
        }
        self.tower = tower
        self.languageModel = languageModel
        self.attentionLayers = Array(Set(layers)).sorted()
    }

    /// The layers whose attention makes an attribution map unless a request names them: the last third
    /// (at least one), where attention to the image is most specific to the words being read.
    public static func defaultAttentionLayers(blockCount: Int) -> [Int] {
        Array((blockCount - (blockCount + 2) / 3)..<blockCount)
    }

    /// Loads the projector file for `languageModel`.
    public convenience init(mmproj: URL, languageModel: LanguageModel, attentionLayers: [Int]? = nil) throws {
        guard FileManager.default.fileExists(atPath: mmproj.path) else { throw ReasoningError.missingModel(mmproj.path) }
        try self.init(tower: LLaVAVisionTower(url: mmproj),
                      languageModel: languageModel, attentionLayers: attentionLayers)
    }

    public func prepare(_ image: RGBImage, precomputed: PrecomputedImageFeatures?, compute: ComputeContext) throws -> any PreparedImage {
        let pixels = image.width.multipliedReportingOverflow(by: image.height)
        guard !pixels.overflow, pixels.partialValue <= PNGDecoder.defaultPixelBudget else {
            throw ReasoningError.invalidImage("\(image.width)x\(image.height) is above the \(PNGDecoder.defaultPixelBudget)-pixel limit")
        }
        let embeddings = try tower.encode(image, compute: compute)
        try compute.checkCancellation()
        let leading = languageModel.tokenizer.encode("", addSpecial: true, parseSpecial: false)
        var cache = languageModel.transformer.makeCache(capacity: languageModel.contextLength)
        do {
            _ = try languageModel.prefill(segments: [.tokens(leading), .embeddings(embeddings, count: tower.tokenCount)],
                                          cache: &cache, compute: compute)
        } catch let LanguageModelError.contextFull(needed, capacity) {
            throw ReasoningError.contextTooSmall(needed: needed, capacity: capacity)
        }
        return LLaVAPreparedImage(frontEnd: self, image: image, prefix: VisualPrefix(cache: cache, leadingTokens: leading, version: 0),
                                  imageStart: leading.count)
    }
}

final class LLaVAPreparedImage: PreparedImage {
    let frontEnd: LLaVAFrontEnd
    let image: RGBImage
    private(set) var prefix: VisualPrefix
    /// Position of the first image token in the prefix.
    let imageStart: Int
    let side: Int
    /// Where the image sits on the tower's square canvas.
    let placement: (x: Int, y: Int, width: Int, height: Int)

    init(frontEnd: LLaVAFrontEnd, image: RGBImage, prefix: VisualPrefix, imageStart: Int) {
        self.frontEnd = frontEnd
        self.image = image
        self.prefix = prefix
        self.imageStart = imageStart
        side = frontEnd.tower.hyperparameters.gridSide
        placement = LLaVAPreprocessing(frontEnd.tower.hyperparameters).placement(width: image.width, height: image.height)
    }

    var grid: (height: Int, width: Int)? { (side, side) }
    var visualPrefix: VisualPrefix? { prefix }

    func initialEvidence(compute: ComputeContext) throws -> [Evidence] {
        [Evidence(source: .wholeImage, tags: [],
                  text: "whole image: \(frontEnd.tower.tokenCount) image tokens at the start of the context")]
    }

    func attribution(of text: String, compute: ComputeContext) throws -> AttributionMap? {
        let model = frontEnd.languageModel, tower = frontEnd.tower
        let tokens = model.tokenizer.encode(text, addSpecial: false, parseSpecial: false)
        let cells = side * side
        var perToken = [Double](repeating: 0, count: tower.tokenCount)
        if !tokens.isEmpty, prefix.cache.count + tokens.count <= prefix.cache.capacity {
            perToken = try model.transformer.meanAttention(
                of: tokens, after: prefix.cache, layers: Set(frontEnd.attentionLayers),
                to: imageStart..<(imageStart + tower.tokenCount)).map(Double.init)
        }
        let scores = Self.gridScores(perToken, cells: cells, classTokenLast: tower.hasClassToken)
        return AttributionMap(gridHeight: side, gridWidth: side, scores: scores,
                              normalization: "attention(layers \(frontEnd.attentionLayers), mean over heads)")
    }

    /// Per-image-token attention mass to a grid map summing to 1 (uniform when there is no mass).
    static func gridScores(_ perToken: [Double], cells: Int, classTokenLast: Bool) -> [Float] {
        var grid = [Double](repeating: 0, count: cells)
        for (i, mass) in perToken.enumerated() where mass.isFinite && mass > 0 {
            if classTokenLast && i == perToken.count - 1 {
                for c in 0..<cells { grid[c] += mass / Double(cells) }
            } else {
                grid[classTokenLast ? i + 1 : i] += mass
            }
        }
        let total = grid.reduce(0, +)
        guard total > 0, total.isFinite else { return [Float](repeating: 1 / Float(cells), count: cells) }
        return grid.map { Float($0 / total) }
    }

    /// Canvas cells -> canvas pixels -> the original image (undoing the centred fit), clamped inside it.
    func pixelBox(of box: GridBox) -> PixelBox {
        let size = Double(frontEnd.tower.hyperparameters.imageSize), cell = size / Double(side)
        let sx = Double(image.width) / Double(placement.width), sy = Double(image.height) / Double(placement.height)
        let x0 = Int(((Double(box.column) * cell - Double(placement.x)) * sx).rounded(.down))
        let x1 = Int(((Double(box.column + box.columns) * cell - Double(placement.x)) * sx).rounded(.up))
        let y0 = Int(((Double(box.row) * cell - Double(placement.y)) * sy).rounded(.down))
        let y1 = Int(((Double(box.row + box.rows) * cell - Double(placement.y)) * sy).rounded(.up))
        let left = min(max(0, x0), image.width - 1), top = min(max(0, y0), image.height - 1)
        let right = max(left + 1, min(image.width, x1)), bottom = max(top + 1, min(image.height, y1))
        return PixelBox(x: left, y: top, width: right - left, height: bottom - top)
    }

    func lookEvidence(at box: PixelBox, step: Int, compute: ComputeContext) throws -> Evidence {
        let crop = try image.cropped(x: box.x, y: box.y, width: box.width, height: box.height)
        let tower = frontEnd.tower
        let embeddings = try tower.encode(crop)
        var cache = prefix.cache
        _ = try frontEnd.languageModel.prefill(segments: [.embeddings(embeddings, count: tower.tokenCount)], cache: &cache,
                                               compute: compute)
        prefix = VisualPrefix(cache: cache, leadingTokens: prefix.leadingTokens, version: prefix.version + 1)
        return Evidence(source: .look(step: step, box: box), tags: [],
                        text: "closer look at \(box): \(tower.tokenCount) more image tokens in the context")
    }
}
