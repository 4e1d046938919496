// VLMCLIP: OpenAI/open_clip CLIP on the CPU, numerically the same model as open_clip in float32.
//
// Reading order: CLIPModel (this file, the public entry point) → CLIPConfig (open_clip_config.json)
// → the image towers (VLMVision's ModifiedResNet and VisionTransformer, configured from open_clip in
// ImageTower.swift and VisionTransformer.swift) and TextTransformer, built from Transformer
// (ResidualAttentionBlock) and the VLMTensor kernels → CLIPTokenizer + TextCleaning (text to ids)
// → PromptTemplates + ZeroShotClassifier (class names to classifier weights).
//
// Typical use:
//     let model = try CLIPModel(directory: dir)            // open_clip hub-format directory
//     let tokenizer = try CLIPTokenizer()
//     let text = try model.encodeText(["a photo of a cat"].map { tokenizer.tokenize($0) })
//     let images = try model.encodeImages(pixelsNCHW, count: n)   // preprocessed per model.preprocess
//     let logits = model.logits(images: images, texts: text)
import Foundation
import Synchronization
import VLMTensor
import VLMVision

/// A CLIP model loaded from an open_clip model directory (`open_clip_config.json` +
/// `open_clip_model.safetensors`, the Hugging Face hub layout), computing the same embeddings as
/// open_clip's `encode_image` / `encode_text` in float32.
///
/// `@unchecked Sendable`: all stored properties are immutable after `init`; every call allocates its
/// own scratch memory, so concurrent calls are safe (they share OpenBLAS's thread pool).
public final class CLIPModel: @unchecked Sendable {
    public static let configFileName = "open_clip_config.json"
    public static let weightsFileName = "open_clip_model.safetensors"
    /// Images encoded per forward pass. Every product runs per image anyway, so small chunks lose
    /// nothing and keep activations cache- and allocator-friendly (RN50 at 224 px: ~3 MB per image and layer).
    public static let imageChunk = 4

    public let config: CLIPConfig
    /// exp(logit_scale): the factor applied to cosine similarities to form logits.
    public let logitScale: Float
    /// Bytes held by the converted weights: float32 for the whole model, plus bf16 copies of the image
    /// tower's once a `precision: .bf16` request has built it.
    public var memoryBytes: Int {
        float32Bytes + (bf16ImageTower.withLock { $0 == nil } ? 0 : 2 * imageTowerParameters)
    }
    private let float32Bytes: Int
    /// Values in the checkpoint's `visual.` tensors.
    private let imageTowerParameters: Int
    /// open_clip's preprocessing parameters for this model (size, mean, std, interpolation, resize mode).
    public var preprocess: CLIPConfig.Preprocess { config.preprocess }
    public var embedDim: Int { config.embedDim }

    let imageTower: any ImageTower  // internal: NativeResolution.swift runs it at other sizes
    /// The bf16 image tower, built from the checkpoint on the first `precision: .bf16` request.
    private let bf16ImageTower = Mutex<(any ImageTower)?>(nil)
    private let weightsURL: URL
    private let towerPasses = Atomic<Int>(0)
    let textTower: TextTransformer  // internal: exported read-only by TextTowerAccess.swift

    public init(directory: URL) throws {
        config = try CLIPConfig(contentsOf: directory.appendingPathComponent(Self.configFileName))
        weightsURL = directory.appendingPathComponent(Self.weightsFileName)
        let file = try SafeTensorsFile(url: weightsURL)
        let checkpoint = CheckpointReader(file: file)
        imageTower = try Self.imageTower(checkpoint, config: config, precision: .fp32)
        textTower = try TextTransformer(checkpoint, config: config)
        logitScale = exp(try checkpoint.tensor("logit_scale", []).storage[0])
        let floats = file.entries.filter { [.F32, .F16, .BF16].contains($0.value.dtype) }
        float32Bytes = 4 * floats.values.reduce(0) { $0 + $1.shape.reduce(1, *) }
        imageTowerParameters = floats.filter { $0.key.hasPrefix("visual.") }.values.reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    private static func imageTower(_ checkpoint: CheckpointReader, config: CLIPConfig, precision: MatrixPrecision) throws
        -> any ImageTower
    {
        switch (config.vision.tower, precision) {
        case let (.modifiedResNet(stageBlocks), _):
            try ModifiedResNet(checkpoint, architecture: .init(openCLIP: config, stageBlocks: stageBlocks), precision: precision)
        case let (.visionTransformer(layers, patchSize), .fp32):
            try CLIPVisionTower(checkpoint, config: config, layers: layers, patchSize: patchSize, packing: PackedLinear.init)
        case let (.visionTransformer(layers, patchSize), .bf16):
            try CLIPVisionTower(checkpoint, config: config, layers: layers, patchSize: patchSize, packing: BF16Linear.init)
        }
    }

    /// The image tower computing at `precision`: bf16 weights are converted on first use (and kept), so a
    /// model only ever used in fp32 holds no second copy.
    private func imageTower(_ precision: MatrixPrecision) throws -> any ImageTower {
        guard precision == .bf16 else { return imageTower }
        guard BF16.isSupported else { throw CLIPError.invalidInput("precision bf16 needs a CPU with AVX-512 BF16; this one has none") }
        return try bf16ImageTower.withLock { tower in
            if let tower { return tower }
            let built = try Self.imageTower(CheckpointReader(file: try SafeTensorsFile(url: weightsURL)), config: config, precision: .bf16)
            tower = built
            return built
        }
    }

    /// Forward passes the image tower has run since load (one per chunk of up to `imageChunk` images
    /// and output); what a test counts to see that embeddings and dense features share a pass.
    public var imageTowerPasses: Int { towerPasses.load(ordering: .relaxed) }

    /// L2-normalised image embeddings for `count` images given as one NCHW float array of
    /// [count, 3, imageSize, imageSize], already preprocessed (resized, cropped, normalised with
    /// `preprocess.mean` / `preprocess.std`). cancellation is checked between layers; `progress`
    /// receives (images done, total) after each chunk of `imageChunk` images. `precision` is the tower's
    /// arithmetic (`.bf16` only where `BF16.isSupported`).
    public func encodeImages(
        _ pixels: [Float], count: Int, precision: MatrixPrecision = .fp32, compute: ComputeContext = ComputeContext(),
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> [[Float]] {
        let imageTower = try imageTower(precision)
        return try forEachImageChunk(pixels, count: count, progress: progress) { chunk, n, scratch in
            countPasses(1)
            return embeddings(try imageTower.encode(chunk, count: n, scratch: scratch, compute: compute), count: n)
        }
    }

    /// Per-position image features ([gridHeight · gridWidth][embedDim] per image, not normalised):
    /// ViT patch tokens after ln_post and proj; for ModifiedResNet, attnpool's value and output
    /// projections applied to each position.
    public func encodeImageDense(_ pixels: [Float], count: Int, precision: MatrixPrecision = .fp32,
                                 compute: ComputeContext = ComputeContext()) throws -> DenseImageFeatures {
        let imageTower = try imageTower(precision)
        var grid = (0, 0)
        let maps: [[[Float]]] = try forEachImageChunk(pixels, count: count) { chunk, n, scratch in
            countPasses(1)
            let dense = try imageTower.encodeDense(chunk, count: n, scratch: scratch, compute: compute)
            grid = (dense.gridHeight, dense.gridWidth)
            return cellMaps(dense.values, count: n, cells: dense.gridHeight * dense.gridWidth)
        }
        return DenseImageFeatures(gridHeight: grid.0, gridWidth: grid.1, features: maps)
    }

    /// `encodeImages` and `encodeImageDense` of the same images together, from one forward pass of a
    /// ViT tower (ModifiedResNet still runs two).
    public func encodeImagesWithDense(_ pixels: [Float], count: Int, precision: MatrixPrecision = .fp32,
                                      compute: ComputeContext = ComputeContext()) throws
        -> (embeddings: [[Float]], dense: DenseImageFeatures)
    {
        let imageTower = try imageTower(precision)
        var grid = (0, 0)
        let encoded: [([Float], [[Float]])] = try forEachImageChunk(pixels, count: count) { chunk, n, scratch in
            countPasses(1)
            let both = try imageTower.encodeWithDense(chunk, count: n, dense: true, scratch: scratch, compute: compute)
            let dense = both.dense!
            grid = (dense.gridHeight, dense.gridWidth)
            return Array(zip(embeddings(both.pooled, count: n), cellMaps(dense.values, count: n, cells: dense.gridHeight * dense.gridWidth)))
        }
        return (encoded.map(\.0), DenseImageFeatures(gridHeight: grid.0, gridWidth: grid.1, features: encoded.map(\.1)))
    }

    private func countPasses(_ passes: Int) { towerPasses.add(passes, ordering: .relaxed) }

    /// Rows of [count, embedDim], each L2-normalised.
    private func embeddings(_ rows: [Float], count: Int) -> [[Float]] {
        (0..<count).map { l2Normalized(Array(rows[$0 * embedDim..<($0 + 1) * embedDim])) }
    }

    /// [count, cells, embedDim] as one [cells][embedDim] map per image.
    private func cellMaps(_ values: [Float], count: Int, cells: Int) -> [[[Float]]] {
        (0..<count).map { image in
            (0..<cells).map { cell in
                let start = (image * cells + cell) * embedDim
                return Array(values[start..<start + embedDim])
            }
        }
    }

    /// L2-normalised text embeddings for token rows from `CLIPTokenizer` (each row 1...contextLength
    /// ids; shorter rows are treated as zero-padded).
    public func encodeText(_ tokens: [[Int32]], compute: ComputeContext = ComputeContext()) throws -> [[Float]] {
        guard !tokens.isEmpty else { return [] }
        for (index, row) in tokens.enumerated() {
            guard !row.isEmpty, row.count <= config.text.contextLength else {
                throw CLIPError.invalidInput("token row \(index) has \(row.count) ids, expected 1...\(config.text.contextLength)")
            }
            if let bad = row.first(where: { $0 < 0 || Int($0) >= config.text.vocabSize }) {
                throw CLIPError.invalidInput("token row \(index) has id \(bad) outside the vocabulary (\(config.text.vocabSize))")
            }
        }
        let scratch = ScratchBuffer()
        let rows = try textTower.encode(tokens, scratch: scratch, compute: compute)
        return (0..<tokens.count).map { l2Normalized(Array(rows[$0 * embedDim..<($0 + 1) * embedDim])) }
    }

    /// logitScale · cosine similarity for normalised embeddings: [images][texts].
    public func logits(images: [[Float]], texts: [[Float]]) -> [[Float]] {
        images.map { image in texts.map { logitScale * dot(image, $0) } }
    }

    /// Validates an NCHW batch and runs `body` on chunks of at most `imageChunk` images.
    private func forEachImageChunk<T>(
        _ pixels: [Float], count: Int, progress: (Int, Int) -> Void = { _, _ in },
        _ body: ([Float], Int, ScratchBuffer) throws -> [T]
    ) throws -> [T] {
        let size = config.vision.imageSize
        let perImage = 3 * size * size
        guard count >= 0, pixels.count == count * perImage else {
            throw CLIPError.invalidInput("expected \(count) images of 3×\(size)×\(size) (\(count * perImage) floats), got \(pixels.count) floats")
        }
        let scratch = ScratchBuffer()
        var results: [T] = []
        results.reserveCapacity(count)
        var start = 0
        while start < count {
            let n = min(Self.imageChunk, count - start)
            results += try body(Array(pixels[start * perImage..<(start + n) * perImage]), n, scratch)
            start += n
            progress(start, count)
        }
        return results
    }
}
