// The projector front end, for any `MultimodalProjector` (LLaVA-1.5 "mlp", idefics3, gemma3, ...): the
// image enters the language model's context as the projector's chunks (marker text and image-token
// embeddings, exactly as mtmd lays them) after BOS, before the prompt text; a step is attributed to
// the image by the language model's own attention from the step's generated tokens to the image-token
// positions.
//
// Attribution: while a step is generated, each token fed back through the model records its attention
// weights in the chosen layers (default: the last third), in the full context (question, previous
// stages, earlier looks); the weights to the image positions are summed at once (ReasoningRun's
// `ImageAttention`), then averaged over tokens, heads and layers when the step ends. Each image token
// has its pixels in the original image (`MultimodalProjector.tokenGeometry`), so the mass is laid on
// the image's grid by area (ImageTokenGeometry.swift): tiles at their place, a global view spread over
// the cells it covers, a look's tokens over the crop it saw.
//
// Looks: the selected crop of the original image is encoded by the same projector (its own chunks,
// markers included, with their layout: bidirectional image attention, M-RoPE grid) and appended to the
// running context right after the step that asked for it, so nothing already in the cache runs again;
// later steps read the crop's tokens there, and their maps include them (laid over the crop's pixels).
// A look chosen before the run (a request's box) joins the visual prefix instead, before the prompt.
import Foundation
import VLMImage
import VLMLanguage
import VLMTensor

/// A prefilled language-model cache of what precedes the prompt text.
public struct VisualPrefix: Sendable {
    /// Keys and values of `leadingTokens`, the image's chunks, and any looks' chunks.
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
public final class ProjectorFrontEnd: VisualFrontEnd, Sendable {
    public let projector: any MultimodalProjector
    public let languageModel: LanguageModel
    /// Decoder layers whose attention makes the attribution maps.
    public let attentionLayers: [Int]

    /// - Parameter attentionLayers: decoder layers to average; default the last third (at least one).
    public init(projector: any MultimodalProjector, languageModel: LanguageModel, attentionLayers: [Int]? = nil) throws {
        try projector.checkCompatible(languageModelWidth: languageModel.hyperparameters.embeddingLength)
        let layerCount = languageModel.hyperparameters.blockCount
        let layers = attentionLayers ?? Self.defaultAttentionLayers(blockCount: layerCount)
        guard !layers.isEmpty, layers.allSatisfy({ (0..<layerCount).contains($0) }) else {
            throw ReasoningError.invalidConfiguration("attention layers \(layers) for a \(layerCount)-layer model")
        }
        self.projector = projector
        self.languageModel = languageModel
        self.attentionLayers = Array(Set(layers)).sorted()
    }

    /// The layers whose attention makes an attribution map unless a request names them: the last third
    /// (at least one), where attention to the image is most specific to the words being read.
    public static func defaultAttentionLayers(blockCount: Int) -> [Int] {
        Array((blockCount - (blockCount + 2) / 3)..<blockCount)
    }

    /// Loads the projector file (any supported type) for `languageModel`.
    public convenience init(mmproj: URL, languageModel: LanguageModel, attentionLayers: [Int]? = nil) throws {
        guard FileManager.default.fileExists(atPath: mmproj.path) else { throw ReasoningError.missingModel(mmproj.path) }
        try self.init(projector: MultimodalProjectors.load(url: mmproj), languageModel: languageModel, attentionLayers: attentionLayers)
    }

    public func prepare(_ image: RGBImage, precomputed: PrecomputedImageFeatures?, compute: ComputeContext) throws -> any PreparedImage {
        let pixels = image.width.multipliedReportingOverflow(by: image.height)
        guard !pixels.overflow, pixels.partialValue <= PNGDecoder.defaultPixelBudget else {
            throw ReasoningError.invalidImage("\(image.width)x\(image.height) is above the \(PNGDecoder.defaultPixelBudget)-pixel limit")
        }
        let leading = languageModel.tokenizer.encode("", addSpecial: true, parseSpecial: false)
        var cache = languageModel.transformer.makeCache(capacity: languageModel.contextLength)
        _ = try Self.prefill([.tokens(leading)], model: languageModel, cache: &cache, compute: compute)
        let prepared = ProjectorPreparedImage(frontEnd: self, image: image,
                                              prefix: VisualPrefix(cache: cache, leadingTokens: leading, version: 0))
        let geometry = try prepared.append(image, at: TokenRegion(x0: 0, y0: 0, x1: Double(image.width), y1: Double(image.height)),
                                           compute: compute)
        prepared.geometry = geometry
        return prepared
    }

    /// Prefills `segments` into `cache`, a full context reported as the reasoning engine's error.
    static func prefill(_ segments: [PromptSegment], model: LanguageModel, cache: inout KVCache, compute: ComputeContext) throws -> [Float] {
        do {
            return try model.prefill(segments: segments, cache: &cache, compute: compute)
        } catch let LanguageModelError.contextFull(needed, capacity) {
            throw ReasoningError.contextTooSmall(needed: needed, capacity: capacity)
        }
    }
}

final class ProjectorPreparedImage: PreparedImage {
    let frontEnd: ProjectorFrontEnd
    let image: RGBImage
    private(set) var prefix: VisualPrefix
    /// The whole image's token geometry: its grid is the attribution grid.
    var geometry: ImageTokenGeometry!
    /// Context positions of every image token so far (the image's, then each look's), in order, and
    /// each token's pixels in the original image.
    private(set) var imagePositions: [Range<Int>] = []
    private(set) var imageRegions: [TokenRegion] = []
    private(set) var lastChunkTokens = 0

    init(frontEnd: ProjectorFrontEnd, image: RGBImage, prefix: VisualPrefix) {
        self.frontEnd = frontEnd
        self.image = image
        self.prefix = prefix
    }

    var grid: (height: Int, width: Int)? { (geometry.gridHeight, geometry.gridWidth) }
    var visualPrefix: VisualPrefix? { prefix }

    var attentionReadout: AttentionReadout? {
        AttentionReadout(layers: Set(frontEnd.attentionLayers), positions: imagePositions)
    }

    /// Encodes `picture` (the image, or a crop of it whose pixels are `area` of the original) and
    /// appends its chunks to the prefix; returns the picture's own geometry.
    @discardableResult
    func append(_ picture: RGBImage, at area: TokenRegion, compute: ComputeContext) throws -> ImageTokenGeometry {
        let (segments, regions, own) = try encode(picture, at: area, compute: compute)
        var cache = prefix.cache
        let start = cache.count
        _ = try ProjectorFrontEnd.prefill(segments, model: frontEnd.languageModel, cache: &cache, compute: compute)
        try compute.checkCancellation()
        place(segments: segments, regions: regions, at: start)
        lastChunkTokens = regions.count
        prefix = VisualPrefix(cache: cache, leadingTokens: prefix.leadingTokens, version: prefix.version + (geometry == nil ? 0 : 1))
        return own
    }

    /// `picture`'s chunks, each image token's pixels in the original image, and the picture's own geometry.
    func encode(_ picture: RGBImage, at area: TokenRegion,
                compute: ComputeContext) throws -> (segments: [PromptSegment], regions: [TokenRegion], own: ImageTokenGeometry) {
        let located = try frontEnd.projector.locatedImageTokens(for: picture, compute: compute)
        try compute.checkCancellation()
        let tokens = located.tokens, own = located.geometry
        // The picture's pixels scaled into the original image's.
        let sx = (area.x1 - area.x0) / Double(picture.width), sy = (area.y1 - area.y0) / Double(picture.height)
        let regions = own.tokenRegions.map {
            TokenRegion(x0: area.x0 + $0.x0 * sx, y0: area.y0 + $0.y0 * sy, x1: area.x0 + $0.x1 * sx, y1: area.y0 + $0.y1 * sy)
        }
        return (tokens.segments(tokenizer: frontEnd.languageModel.tokenizer), regions, own)
    }

    /// Records chunks starting at context slot `slot`: their embedding runs' slots join the readout.
    private func place(segments: [PromptSegment], regions: [TokenRegion], at slot: Int) {
        var position = slot
        for segment in segments {
            if case .embeddings = segment { imagePositions.append(position..<(position + segment.positionCount)) }
            position += segment.positionCount
        }
        imageRegions += regions
    }

    func place(_ look: LookChunks, at slot: Int) { place(segments: look.segments, regions: look.regions, at: slot) }

    func lookChunks(at box: PixelBox, step: Int, compute: ComputeContext) throws -> LookChunks? {
        let crop = try image.cropped(x: box.x, y: box.y, width: box.width, height: box.height)
        let (segments, regions, _) = try encode(crop, at: Self.area(of: box), compute: compute)
        return LookChunks(evidence: Self.lookEvidence(at: box, step: step, tokens: regions.count), segments: segments, regions: regions)
    }

    static func area(of box: PixelBox) -> TokenRegion {
        TokenRegion(x0: Double(box.x), y0: Double(box.y), x1: Double(box.x + box.width), y1: Double(box.y + box.height))
    }

    static func lookEvidence(at box: PixelBox, step: Int, tokens: Int) -> Evidence {
        Evidence(source: .look(step: step, box: box), tags: [], text: "closer look at \(box): \(tokens) more image tokens in the context")
    }

    func initialEvidence(compute: ComputeContext) throws -> [Evidence] {
        [Evidence(source: .wholeImage, tags: [],
                  text: "whole image: \(imageRegions.count) image tokens at the start of the context")]
    }

    /// Attribution is by attention (`attention(_:)`), not by text.
    func attribution(of text: String, compute: ComputeContext) throws -> AttributionMap? { nil }

    func attribution(attention mass: [Double]) -> AttributionMap? {
        geometry.map(mass, regions: imageRegions,
                     normalization: "attention(layers \(frontEnd.attentionLayers), mean over the step's tokens and heads)")
    }

    func pixelBox(of box: GridBox) -> PixelBox { geometry.pixelBox(of: box) }

    /// A look before the run (a box the request chose): the crop's chunks join the visual prefix, before
    /// the prompt. Looks during the run join the context where their step ended (`lookChunks`).
    func lookEvidence(at box: PixelBox, step: Int, compute: ComputeContext) throws -> Evidence {
        let crop = try image.cropped(x: box.x, y: box.y, width: box.width, height: box.height)
        try append(crop, at: Self.area(of: box), compute: compute)
        return Self.lookEvidence(at: box, step: step, tokens: lastChunkTokens)
    }
}
