// Attribution without a language model: for texts a caller gives, the map, selection and heatmap a
// reasoning step with that text would get on the CLIP path (the same functions compute them).
import VLMCLIP
import VLMImage
import VLMTensor

public struct Attributor: Sendable {
    public let image: RGBImage
    public let gridHeight: Int, gridWidth: Int
    /// L2-normalised dense features, row-major over the grid (as CLIPPreparedImage keeps them).
    public let cells: [[Float]]
    let geometry: PreprocessingGeometry
    let logitScale: Float
    let configuration: ReasoningConfiguration

    /// `features` are what `PrecomputedImageFeatures(clip:preprocessing:image:)` computes for `image`
    /// (e.g. from a cache); only their dense part is used. The configuration's selection,
    /// normalisation, heatmap output, alpha and aspect-ratio limit apply.
    public init(clip: CLIPModel, preprocessing: CLIPPreprocessing, image: RGBImage, features: PrecomputedImageFeatures,
                configuration: ReasoningConfiguration) throws {
        try CLIPFrontEnd.checkSizeAndAspect(image, maxAspectRatio: configuration.maxAspectRatio)
        guard let dense = features.dense, dense.gridHeight > 0, dense.gridWidth > 0,
              dense.features.count == dense.gridHeight * dense.gridWidth,
              dense.features.allSatisfy({ $0.count == clip.embedDim }) else {
            throw ReasoningError.invalidImage("attribution needs the image's dense features from this model")
        }
        self.image = image
        (gridHeight, gridWidth) = (dense.gridHeight, dense.gridWidth)
        cells = dense.features.map(l2Normalized)
        geometry = PreprocessingGeometry(imageWidth: image.width, imageHeight: image.height,
                                         size: preprocessing.imageSize, mode: preprocessing.resizeMode)
        logitScale = clip.logitScale
        self.configuration = configuration
    }

    /// The original-image pixels of a box of grid cells.
    public func pixelBox(of box: GridBox) -> PixelBox {
        geometry.pixelBox(of: box, gridHeight: gridHeight, gridWidth: gridWidth)
    }

    /// The part of the image the tower sees (its centre crop), in original pixels.
    public var visibleBox: PixelBox { pixelBox(of: GridBox(row: 0, column: 0, rows: gridHeight, columns: gridWidth)) }

    /// Text number `index` (its L2-normalised CLIP embedding given): its map, selection and heatmap,
    /// reported with `step` = `index`.
    public func attribution(index: Int, text: String, textEmbedding: [Float]) throws -> StepAttribution {
        try attribution(index: index, text: text, map: similarityMap(textEmbedding: textEmbedding))
    }

    /// The plain map of a text: its cosine with each cell, normalised as configured.
    public func similarityMap(textEmbedding: [Float]) -> AttributionMap {
        Attribution.map(textEmbedding: textEmbedding, cells: cells, gridHeight: gridHeight, gridWidth: gridWidth,
                        normalization: configuration.normalization, logitScale: logitScale)
    }

    /// Text number `index` with a map made elsewhere (a learned selector's): its selection and heatmap.
    public func attribution(index: Int, text: String, map: AttributionMap) throws -> StepAttribution {
        try Attribution.stepAttribution(step: index, text: text, caption: "text \(index): \(text)", map: map, image: image,
                                        pixelBox: pixelBox(of:), selection: configuration.selection,
                                        heatmaps: configuration.heatmaps, alpha: configuration.heatmapAlpha)
    }
}
