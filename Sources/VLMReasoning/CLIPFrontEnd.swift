// The composed visual front end: CLIP tags the image, its regions and later crops from a label bank,
// and attributes text to image patches through its dense per-position features.
import Foundation
import VLMCLIP
import VLMImage
import VLMTensor

/// `@unchecked Sendable`: immutable after init (the models are themselves safe to share).
public final class CLIPFrontEnd: VisualFrontEnd, @unchecked Sendable {
    public let clip: CLIPModel
    public let tokenizer: CLIPTokenizer
    public let preprocessing: CLIPPreprocessing
    public let classifier: ZeroShotClassifier
    let tagsPerRegion: Int
    let regionGrid: (rows: Int, columns: Int)
    let normalization: AttributionNormalization
    let maxAspectRatio: Double

    /// Builds the zero-shot classifier over `configuration.labelBank` (one text-tower pass per label).
    public convenience init(clip: CLIPModel, tokenizer: CLIPTokenizer, preprocessing: CLIPPreprocessing,
                            configuration: ReasoningConfiguration, compute: ComputeContext = ComputeContext()) throws {
        let classifier = try ZeroShotClassifier(model: clip, tokenizer: tokenizer, classNames: configuration.labelBank,
                                                templates: configuration.labelTemplates, compute: compute)
        try self.init(clip: clip, tokenizer: tokenizer, preprocessing: preprocessing, classifier: classifier,
                      configuration: configuration)
    }

    /// With a label-bank classifier the caller built (e.g. from cached text embedding); its classes
    /// must be `configuration.labelBank`.
    public init(clip: CLIPModel, tokenizer: CLIPTokenizer, preprocessing: CLIPPreprocessing,
                classifier: ZeroShotClassifier, configuration: ReasoningConfiguration) throws {
        guard preprocessing.imageSize == clip.config.vision.imageSize else {
            throw ReasoningError.invalidConfiguration(
                "preprocessing makes \(preprocessing.imageSize) px images, the CLIP tower takes \(clip.config.vision.imageSize) px")
        }
        guard classifier.classNames == configuration.labelBank else {
            throw ReasoningError.invalidConfiguration("the classifier's classes are not the configuration's label bank")
        }
        self.clip = clip
        self.tokenizer = tokenizer
        self.preprocessing = preprocessing
        self.classifier = classifier
        tagsPerRegion = configuration.tagsPerRegion
        regionGrid = configuration.regionGrid
        normalization = configuration.normalization
        maxAspectRatio = configuration.maxAspectRatio
    }

    /// The features `prepare` computes for `image`, for a caller that caches them (e.g. by
    /// `RGBImage.contentDigest`) and passes them back as `precomputed`.
    public func features(of image: RGBImage, compute: ComputeContext = ComputeContext()) throws -> PrecomputedImageFeatures {
        try PrecomputedImageFeatures(clip: clip, preprocessing: preprocessing, image: image, compute: compute)
    }

    public func prepare(_ image: RGBImage, precomputed: PrecomputedImageFeatures?, compute: ComputeContext) throws -> any PreparedImage {
        try check(image)
        if let precomputed { try check(precomputed) }
        let (global, dense) = try features(of: image, completing: precomputed, compute: compute)
        let geometry = PreprocessingGeometry(imageWidth: image.width, imageHeight: image.height,
                                             size: preprocessing.imageSize, mode: preprocessing.resizeMode)
        return CLIPPreparedImage(frontEnd: self, image: image, geometry: geometry, globalEmbedding: global,
                                 gridHeight: dense.gridHeight, gridWidth: dense.gridWidth, cells: dense.features.map(l2Normalized))
    }

    /// The global embedding and dense features of `image`: those given, the missing ones computed
    /// (both from one tower pass when neither is given).
    func features(of image: RGBImage, completing given: PrecomputedImageFeatures?, compute: ComputeContext) throws
        -> (global: [Float], dense: (gridHeight: Int, gridWidth: Int, features: [[Float]]))
    {
        switch (given?.globalEmbedding, given?.dense) {
        case let (global?, dense?):
            return (global, dense)
        case let (global?, nil):
            let dense = try clip.encodeImageDense(preprocessing(image), count: 1, compute: compute)
            return (global, (dense.gridHeight, dense.gridWidth, dense.features[0]))
        case let (nil, dense?):
            return (try clip.encodeImages(preprocessing(image), count: 1, compute: compute)[0], dense)
        case (nil, nil):
            let both = try PrecomputedImageFeatures(clip: clip, preprocessing: preprocessing, image: image, compute: compute)
            return (both.globalEmbedding!, both.dense!)
        }
    }

    /// Refuses precomputed features that do not fit this model.
    func check(_ precomputed: PrecomputedImageFeatures) throws {
        let dim = clip.embedDim
        if let given = precomputed.globalEmbedding, given.count != dim || !given.allSatisfy(\.isFinite) {
            throw ReasoningError.invalidImage("precomputed global embedding has \(given.count) values, the model embeds in \(dim)")
        }
        if let dense = precomputed.dense {
            guard dense.gridHeight > 0, dense.gridWidth > 0, dense.features.count == dense.gridHeight * dense.gridWidth,
                  dense.features.allSatisfy({ $0.count == dim }) else {
                throw ReasoningError.invalidImage(
                    "precomputed dense features: \(dense.features.count) cells of a \(dense.gridHeight)x\(dense.gridWidth) grid, expected \(dim) values each")
            }
        }
    }

    /// Refuses images whose regions would be empty or whose centre crop would hide most of them.
    func check(_ image: RGBImage) throws {
        try Self.checkSizeAndAspect(image, maxAspectRatio: maxAspectRatio)
        guard image.width >= regionGrid.columns, image.height >= regionGrid.rows else {
            throw ReasoningError.invalidImage(
                "\(image.width)x\(image.height) is too small for a \(regionGrid.rows)x\(regionGrid.columns) region grid")
        }
    }

    /// Refuses images above the pixel budget, and those so elongated that the centre crop would hide
    /// most of them (what attribution alone also refuses).
    static func checkSizeAndAspect(_ image: RGBImage, maxAspectRatio: Double) throws {
        let pixels = image.width.multipliedReportingOverflow(by: image.height)
        guard !pixels.overflow, pixels.partialValue <= PNGDecoder.defaultPixelBudget else {
            throw ReasoningError.invalidImage("\(image.width)x\(image.height) is above the \(PNGDecoder.defaultPixelBudget)-pixel limit")
        }
        let aspect = Double(max(image.width, image.height)) / Double(min(image.width, image.height))
        guard aspect <= maxAspectRatio else {
            throw ReasoningError.invalidImage(
                "\(image.width)x\(image.height) has aspect ratio \(String(format: "%.1f", aspect)), above the limit of \(maxAspectRatio)")
        }
    }

    /// The label bank's top tags for each embedding: softmax over logitScale · cosine, like zero-shot
    /// classification.
    func tags(for embeddings: [[Float]]) -> [[LabelProbability]] {
        classifier.logits(imageEmbeddings: embeddings, logitScale: clip.logitScale).map { logits in
            let p = softmaxInDouble(logits)
            return logits.indices.sorted { p[$0] != p[$1] ? p[$0] > p[$1] : $0 < $1 }.prefix(tagsPerRegion)
                .map { LabelProbability(label: classifier.classNames[$0], probability: Float(p[$0])) }
        }
    }

    /// Embeds crops of the original image (each preprocessed like a whole image).
    func embed(_ crops: [RGBImage], compute: ComputeContext) throws -> [[Float]] {
        try clip.encodeImages(preprocessing.batch(crops), count: crops.count, compute: compute)
    }
}

extension PrecomputedImageFeatures {
    /// What a CLIP front end computes for `image`: its global embedding and its dense features, from one
    /// pass of a ViT tower.
    public init(clip: CLIPModel, preprocessing: CLIPPreprocessing, image: RGBImage, compute: ComputeContext = ComputeContext()) throws {
        let encoded = try clip.encodeImagesWithDense(preprocessing(image), count: 1, compute: compute)
        let dense = encoded.dense
        self.init(globalEmbedding: encoded.embeddings[0], dense: (dense.gridHeight, dense.gridWidth, dense.features[0]))
    }
}

/// Evidence text: "whole image: cat 62%, dog 21%, bird 4%".
func renderEvidence(_ subject: String, _ tags: [LabelProbability]) -> String {
    subject + ": " + tags.map { "\($0.label) \(Int(($0.probability * 100).rounded()))%" }.joined(separator: ", ")
}

/// Names of the cells of a region grid: "top left" ... for 2x2 and 3x3, "row r column c" otherwise.
func regionName(row: Int, column: Int, rows: Int, columns: Int) -> String {
    let vertical: [Int: [String]] = [1: [""], 2: ["top", "bottom"], 3: ["top", "middle", "bottom"]]
    let horizontal: [Int: [String]] = [1: [""], 2: ["left", "right"], 3: ["left", "centre", "right"]]
    guard let v = vertical[rows], let h = horizontal[columns] else { return "row \(row + 1) column \(column + 1)" }
    let name = [v[row], h[column]].filter { !$0.isEmpty }.joined(separator: " ")
    return name.isEmpty ? "whole image" : name
}

/// One image encoded by CLIP for a run. Dense cells are stored L2-normalised.
final class CLIPPreparedImage: PreparedImage {
    let frontEnd: CLIPFrontEnd
    let image: RGBImage
    let geometry: PreprocessingGeometry
    let globalEmbedding: [Float]
    let gridHeight: Int, gridWidth: Int
    let cells: [[Float]]
    var grid: (height: Int, width: Int)? { (gridHeight, gridWidth) }

    init(frontEnd: CLIPFrontEnd, image: RGBImage, geometry: PreprocessingGeometry, globalEmbedding: [Float],
         gridHeight: Int, gridWidth: Int, cells: [[Float]]) {
        self.frontEnd = frontEnd; self.image = image; self.geometry = geometry; self.globalEmbedding = globalEmbedding
        self.gridHeight = gridHeight; self.gridWidth = gridWidth; self.cells = cells
    }

    func initialEvidence(compute: ComputeContext) throws -> [Evidence] {
        var evidence = [Evidence(source: .wholeImage, tags: frontEnd.tags(for: [globalEmbedding])[0], text: "")]
        let (rows, columns) = frontEnd.regionGrid
        if rows > 0, columns > 0, rows * columns > 1 {
            // Equal shares of the original image, edges at floor(i * size / n): every pixel in one region.
            var boxes: [(String, PixelBox)] = []
            for r in 0..<rows {
                for c in 0..<columns {
                    let x0 = c * image.width / columns, x1 = (c + 1) * image.width / columns
                    let y0 = r * image.height / rows, y1 = (r + 1) * image.height / rows
                    boxes.append((regionName(row: r, column: c, rows: rows, columns: columns),
                                  PixelBox(x: x0, y: y0, width: x1 - x0, height: y1 - y0)))
                }
            }
            let crops = try boxes.map { try image.cropped(x: $0.1.x, y: $0.1.y, width: $0.1.width, height: $0.1.height) }
            let tags = frontEnd.tags(for: try frontEnd.embed(crops, compute: compute))
            for ((name, box), regionTags) in zip(boxes, tags) {
                evidence.append(Evidence(source: .region(name: name, box: box), tags: regionTags, text: ""))
            }
        }
        return evidence.map { item in
            var item = item
            switch item.source {
            case .wholeImage: item.text = renderEvidence("whole image", item.tags)
            case let .region(name, _): item.text = renderEvidence(name, item.tags)
            case .look: break
            }
            return item
        }
    }

    func attribution(of text: String, compute: ComputeContext) throws -> AttributionMap? {
        let contextLength = frontEnd.clip.config.text.contextLength
        let tokens = frontEnd.tokenizer.tokenize(text, contextLength: contextLength)
        let embedding = try frontEnd.clip.encodeText([tokens], compute: compute)[0]
        return Attribution.map(textEmbedding: embedding, cells: cells, gridHeight: gridHeight, gridWidth: gridWidth,
                               normalization: frontEnd.normalization, logitScale: frontEnd.clip.logitScale)
    }

    func pixelBox(of box: GridBox) -> PixelBox {
        geometry.pixelBox(of: box, gridHeight: gridHeight, gridWidth: gridWidth)
    }

    func lookEvidence(at box: PixelBox, step: Int, compute: ComputeContext) throws -> Evidence {
        let crop = try image.cropped(x: box.x, y: box.y, width: box.width, height: box.height)
        let tags = frontEnd.tags(for: try frontEnd.embed([crop], compute: compute))[0]
        return Evidence(source: .look(step: step, box: box), tags: tags,
                        text: renderEvidence("closer look at \(box)", tags))
    }
}
