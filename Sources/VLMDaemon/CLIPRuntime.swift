import Foundation
import VLMCLIP
import VLMImage
import VLMReasoning
import VLMTensor
import VLMWire

/// The CLIP side of the daemon: embeddings with their caches. Images are cached by content
/// (SHA-256 of the decoded pixels) per model; text embeddings by (model, prompt).
final class CLIPRuntime: Sendable {
    /// Embeddings differ by precision, so it is part of the key (visual reasoning's features are fp32).
    struct ImageKey: Hashable, Sendable { let model: String; let imageId: String; var precision = MatrixPrecision.fp32 }
    struct TextKey: Hashable, Sendable { let model: String; let prompt: String }
    struct CachedImage: Sendable { let embedding: [Float]; let width: Int; let height: Int }

    let imageCache: LRUCache<ImageKey, CachedImage>
    let textCache: LRUCache<TextKey, [Float]>
    /// Global + dense features of images that visual reasoning has seen, so a second question about
    /// the same picture encodes nothing.
    let reasoningCache: LRUCache<ImageKey, PrecomputedImageFeatures>
    private let tokenizerBox = Mutex<CLIPTokenizer?>(nil)

    init(imageCacheBytes: Int, textCacheBytes: Int) {
        imageCache = LRUCache(name: "image-embeddings", budgetBytes: imageCacheBytes)
        textCache = LRUCache(name: "text-embeddings", budgetBytes: textCacheBytes)
        reasoningCache = LRUCache(name: "reasoning-image-features", budgetBytes: imageCacheBytes / 2)
    }

    /// CLIP's BPE tokenizer, loaded once (every CLIP model shares its vocabulary).
    func tokenizer() throws -> CLIPTokenizer {
        try tokenizerBox.withLock { box in
            if let tokenizer = box { return tokenizer }
            let tokenizer = try CLIPTokenizer()
            box = tokenizer
            return tokenizer
        }
    }

    func forget(model id: String) {
        imageCache.removeAll { $0.model == id }
        textCache.removeAll { $0.model == id }
        reasoningCache.removeAll { $0.model == id }
    }

    /// The image id clients use to refer to an image's content: the first 128 bits of its pixel digest.
    static func imageId(for image: RGBImage) -> String { "img_" + image.contentDigest.prefix(32) }

    /// Embeds images (an imageId needs no image), encoding only the cache misses, in batches.
    /// `onBatch` is called after each encoded batch with the number of images done.
    func embed(
        _ items: [(imageId: String, image: RGBImage?)], with clip: LoadedCLIP, batchSize: Int = CLIPModel.imageChunk,
        precision: MatrixPrecision = .fp32, compute: ComputeContext, onBatch: (Int) -> Void = { _ in }
    ) throws -> [(embedding: [Float], cached: Bool, width: Int, height: Int)] {
        var results: [(embedding: [Float], cached: Bool, width: Int, height: Int)?] = Array(repeating: nil, count: items.count)
        var misses: [Int] = []
        for (index, item) in items.enumerated() {
            if let hit = cachedEmbedding(of: item.imageId, clip: clip, precision: precision) {
                results[index] = (hit.embedding, true, hit.width, hit.height)
            } else if item.image != nil {
                misses.append(index)
            } else {
                throw notCached(item.imageId, index: index, clip: clip, precision: precision)
            }
        }
        var done = items.count - misses.count
        for start in stride(from: 0, to: misses.count, by: max(1, batchSize)) {
            try compute.checkCancellation()
            let batch = misses[start..<min(start + batchSize, misses.count)].map { index in
                let image = items[index].image!
                return PreparedImage(imageId: items[index].imageId, width: image.width, height: image.height, pixels: clip.preprocessing(image))
            }
            let embeddings = try encodeAndCache(batch, with: clip, precision: precision, compute: compute)
            for (index, (image, embedding)) in zip(misses[start...], zip(batch, embeddings)) {
                results[index] = (embedding, false, image.width, image.height)
            }
            done += batch.count
            onBatch(done)
        }
        return results.map { $0! }
    }

    /// An image reduced to what encoding needs: its content id, size and preprocessed pixels.
    struct PreparedImage: Sendable {
        let imageId: String
        let width: Int
        let height: Int
        let pixels: [Float]
    }

    /// An image made ready for the tower ahead of its turn (see `runStagedSteps`): its cached
    /// embedding when the cache held it then, and its preprocessed pixels when it did not (or when
    /// `keepPixels` asks for them anyway). The decoded image itself is not kept.
    struct StagedImage: Sendable {
        let prepared: PreparedImage
        let hit: CachedImage?
    }

    /// Reads what the tower will need of `image`; the cache lookup here only spares the
    /// preprocessing of a hit, `embed(staged:)` decides.
    func stage(_ image: RGBImage, clip: LoadedCLIP, precision: MatrixPrecision = .fp32, keepPixels: Bool = false) -> StagedImage {
        let imageId = Self.imageId(for: image)
        let hit = cachedEmbedding(of: imageId, clip: clip, precision: precision)
        let pixels = hit == nil || keepPixels ? clip.preprocessing(image) : []
        return StagedImage(prepared: PreparedImage(imageId: imageId, width: image.width, height: image.height, pixels: pixels),
                           hit: hit)
    }

    /// The cached embedding of each staged image, or nil for those the tower must encode. An image
    /// staged as a miss is looked up again: the step before it may have encoded the same picture
    /// meanwhile, and a run without staging ahead would have found it there.
    func hits(_ staged: [StagedImage], clip: LoadedCLIP, precision: MatrixPrecision = .fp32) -> [CachedImage?] {
        staged.map { $0.hit ?? cachedEmbedding(of: $0.prepared.imageId, clip: clip, precision: precision) }
    }

    /// Embeddings of staged images in order, and whether each came from the cache; the misses go
    /// through the tower in one forward pass and into the cache.
    func embed(staged: [StagedImage], with clip: LoadedCLIP, precision: MatrixPrecision = .fp32, compute: ComputeContext) throws -> [(embedding: [Float], cached: Bool)] {
        let hits = hits(staged, clip: clip, precision: precision)
        let misses = staged.indices.filter { hits[$0] == nil }
        let encoded = try encodeAndCache(misses.map { staged[$0].prepared }, with: clip, precision: precision, compute: compute)
        var results = hits.map { $0.map { (embedding: $0.embedding, cached: true) } }
        for (index, embedding) in zip(misses, encoded) { results[index] = (embedding, false) }
        return results.map { $0! }
    }

    func cachedEmbedding(of imageId: String, clip: LoadedCLIP, precision: MatrixPrecision = .fp32) -> CachedImage? {
        imageCache.value(for: ImageKey(model: clip.id, imageId: imageId, precision: precision))
    }

    func notCached(_ imageId: String, index: Int, clip: LoadedCLIP, precision: MatrixPrecision = .fp32) -> RPCError {
        RPCError(code: ErrorCode.imageUnreadable, message:
            "params.images[\(index)].imageId: '\(imageId)' is not in the cache of model '\(clip.id)' at precision \(precision.rawValue) (never encoded with it, or evicted); send the image itself")
    }

    /// Encodes prepared images in one forward pass and caches their embeddings.
    func encodeAndCache(_ images: [PreparedImage], with clip: LoadedCLIP, precision: MatrixPrecision = .fp32,
                        compute: ComputeContext) throws -> [[Float]] {
        guard !images.isEmpty else { return [] }
        let embeddings = try clip.model.encodeImages(images.flatMap(\.pixels), count: images.count, precision: precision,
                                                     compute: compute)
        cache(images, embeddings, clip: clip, precision: precision)
        return embeddings
    }

    func cache(_ images: [PreparedImage], _ embeddings: [[Float]], clip: LoadedCLIP, precision: MatrixPrecision = .fp32) {
        for (image, embedding) in zip(images, embeddings) {
            imageCache.insert(CachedImage(embedding: embedding, width: image.width, height: image.height),
                              for: ImageKey(model: clip.id, imageId: image.imageId, precision: precision), cost: embedding.count * 4 + 128)
        }
    }

    /// Normalised text embeddings for prompts, encoding only the cache misses.
    func embed(prompts: [String], with clip: LoadedCLIP, compute: ComputeContext) throws -> [[Float]] {
        var results = prompts.map { textCache.value(for: TextKey(model: clip.id, prompt: $0)) }
        let misses = results.indices.filter { results[$0] == nil }
        let tokenizer = try tokenizer()
        let contextLength = clip.model.config.text.contextLength
        let chunk = 64  // bounds activation memory for large label x template sets
        for start in stride(from: 0, to: misses.count, by: chunk) {
            try compute.checkCancellation()
            let batch = Array(misses[start..<min(start + chunk, misses.count)])
            let tokens = batch.map { tokenizer.tokenize(prompts[$0], contextLength: contextLength) }
            let embeddings = try clip.model.encodeText(tokens, compute: compute)
            for (index, embedding) in zip(batch, embeddings) {
                textCache.insert(embedding, for: TextKey(model: clip.id, prompt: prompts[index]), cost: embedding.count * 4 + prompts[index].utf8.count + 64)
                results[index] = embedding
            }
        }
        return results.map { $0! }
    }

    /// Visual-reasoning features of `image` (global + dense), through `reasoningCache`; the global
    /// embedding also lands in the image cache for encode-image and classify.
    func reasoningFeatures(of image: RGBImage, imageId: String, clip: LoadedCLIP,
                           compute: ComputeContext) throws -> PrecomputedImageFeatures {
        let key = ImageKey(model: clip.id, imageId: imageId)
        if let cached = reasoningCache.value(for: key) { return cached }
        let features = try PrecomputedImageFeatures(clip: clip.model, preprocessing: clip.preprocessing, image: image,
                                                    compute: compute)
        let cells = features.dense.map { $0.features.count * ($0.features.first?.count ?? 0) } ?? 0
        reasoningCache.insert(features, for: key, cost: 4 * (cells + (features.globalEmbedding?.count ?? 0)) + 256)
        if let global = features.globalEmbedding {
            imageCache.insert(CachedImage(embedding: global, width: image.width, height: image.height), for: key, cost: global.count * 4 + 128)
        }
        return features
    }
}
