// The hyperparameters and tensors of a LLaVA-1.5-style projector file ("mmproj"), in llama.cpp's
// `clip.*` GGUF layout: a CLIP ViT vision tower (`v.*`) and a two-layer MLP projector (`mm.0`, `mm.2`).
//
// Read with VLMLanguage's GGUF reader; every key and tensor is checked (presence, type, shape) and any
// fault is reported naming it. Matrices stay views into the mapped file (F32 or F16).
import Foundation
import VLMLanguage
import VLMTensor

public enum MMProjError: Error, CustomStringConvertible, Equatable {
    case notSupported(String)
    case badKey(key: String, reason: String)
    case badTensor(name: String, reason: String)
    case widthMismatch(projector: Int, languageModel: Int)

    public var description: String {
        switch self {
        case let .notSupported(what): "mmproj: \(what)"
        case let .badKey(key, reason): "mmproj metadata '\(key)': \(reason)"
        case let .badTensor(name, reason): "mmproj tensor '\(name)': \(reason)"
        case let .widthMismatch(p, lm): "mmproj projects to width \(p), but the language model embeds in \(lm)"
        }
    }
}

/// The vision tower's shape, from the `clip.vision.*` keys.
public struct MMProjHyperparameters: Sendable, Equatable {
    public var imageSize: Int
    public var patchSize: Int
    public var width: Int
    public var feedForwardLength: Int
    public var headCount: Int
    /// Blocks stored in the file.
    public var blockCount: Int
    /// Blocks llama.cpp runs: the penultimate layer's output feeds the projector (LLaVA's default), or
    /// up to the deepest `clip.vision.feature_layer` when the file names feature layers.
    public var blocksRun: Int
    public var layerNormEpsilon: Float
    public var imageMean: [Float]
    public var imageStd: [Float]
    /// `clip.use_gelu`: GELU (tanh form, as ggml) in the tower's MLP; otherwise quick GELU.
    public var useGELU: Bool
    /// Output width of the projector (`clip.vision.projection_dim`), which must equal the LM's width.
    public var projectionWidth: Int

    public var gridSide: Int { imageSize / patchSize }
    public var patchCount: Int { gridSide * gridSide }
    public var headDimension: Int { width / headCount }

    /// Limits that keep a hostile header from asking for absurd allocations.
    static let maxImageSize = 4096, maxWidth = 16384, maxBlocks = 256

    init(gguf: GGUFFile) throws {
        func int(_ key: String, _ range: ClosedRange<Int>) throws -> Int {
            let value: Int
            do { value = try gguf.int(key) } catch { throw MMProjError.badKey(key: key, reason: "\(error)") }
            guard range.contains(value) else { throw MMProjError.badKey(key: key, reason: "\(value) is outside \(range)") }
            return value
        }
        func floats(_ key: String) throws -> [Float] {
            guard let array = gguf.metadata[key]?.arrayValue else { throw MMProjError.badKey(key: key, reason: "missing or not an array") }
            let values = array.compactMap(\.doubleValue).map(Float.init)
            guard values.count == 3, array.count == 3, values.allSatisfy(\.isFinite) else {
                throw MMProjError.badKey(key: key, reason: "expected 3 finite numbers")
            }
            return values
        }
        func bool(_ key: String) -> Bool? { gguf.metadata[key]?.boolValue }

        guard bool("clip.has_vision_encoder") == true else {
            throw MMProjError.badKey(key: "clip.has_vision_encoder", reason: "missing or false: no vision tower in this file")
        }
        let projector = (try? gguf.string("clip.projector_type")) ?? (try? gguf.string("clip.vision.projector_type"))
        guard let projector else { throw MMProjError.badKey(key: "clip.projector_type", reason: "missing") }
        guard projector == "mlp" else { throw MMProjError.notSupported("projector type '\(projector)' (only LLaVA-1.5's 'mlp')") }

        imageSize = try int("clip.vision.image_size", 1...Self.maxImageSize)
        patchSize = try int("clip.vision.patch_size", 1...imageSize)
        guard imageSize % patchSize == 0 else {
            throw MMProjError.badKey(key: "clip.vision.patch_size", reason: "\(patchSize) does not divide the image size \(imageSize)")
        }
        width = try int("clip.vision.embedding_length", 1...Self.maxWidth)
        feedForwardLength = try int("clip.vision.feed_forward_length", 1...4 * Self.maxWidth)
        headCount = try int("clip.vision.attention.head_count", 1...width)
        guard width % headCount == 0 else {
            throw MMProjError.badKey(key: "clip.vision.attention.head_count", reason: "\(headCount) does not divide the width \(width)")
        }
        blockCount = try int("clip.vision.block_count", 1...Self.maxBlocks)
        projectionWidth = try int("clip.vision.projection_dim", 1...Self.maxWidth)
        let eps: Double
        do { eps = try gguf.double("clip.vision.attention.layer_norm_epsilon") } catch {
            throw MMProjError.badKey(key: "clip.vision.attention.layer_norm_epsilon", reason: "\(error)")
        }
        guard eps > 0, eps < 1 else { throw MMProjError.badKey(key: "clip.vision.attention.layer_norm_epsilon", reason: "\(eps)") }
        layerNormEpsilon = Float(eps)
        imageMean = try floats("clip.vision.image_mean")
        imageStd = try floats("clip.vision.image_std")
        guard imageStd.allSatisfy({ $0 > 0 }) else { throw MMProjError.badKey(key: "clip.vision.image_std", reason: "must be positive") }
        useGELU = bool("clip.use_gelu") ?? false
        // llama.cpp (clip_graph_llava): run blocks 0..<n-1 unless explicit feature layers say otherwise.
        if let layers = gguf.metadata["clip.vision.feature_layer"]?.arrayValue?.compactMap(\.intValue), let deepest = layers.max(), deepest >= 0 {
            guard deepest <= blockCount else {
                throw MMProjError.badKey(key: "clip.vision.feature_layer", reason: "layer \(deepest) beyond \(blockCount) blocks")
            }
            guard layers.count == 1 else { throw MMProjError.notSupported("several feature layers (granite-style stacking)") }
            blocksRun = deepest
        } else {
            blocksRun = blockCount - 1
        }
    }
}

/// One encoder block's weights (pre-norm ViT block with biases everywhere).
struct VisionBlockWeights: @unchecked Sendable {
    let norm1Weight, norm1Bias, norm2Weight, norm2Bias: [Float]
    let query, key, value, output, up, down: QuantizedMatrix
    let queryBias, keyBias, valueBias, outputBias, upBias, downBias: [Float]
}

/// All tensors the tower and projector read. `@unchecked Sendable`: immutable views into the mapping
/// that `gguf` keeps alive.
final class MMProjWeights: @unchecked Sendable {
    let gguf: GGUFFile
    /// [width][3 * patch * patch], each row in (channel, y, x) order: ggml's conv kernel ne = [p, p, 3, width].
    let patchEmbedding: QuantizedMatrix
    let patchBias: [Float]?
    let classEmbedding: [Float]?
    /// [positions][width]
    let positionEmbedding: [Float]
    let preNorm: (weight: [Float], bias: [Float])?
    let postNorm: (weight: [Float], bias: [Float])?
    let blocks: [VisionBlockWeights]
    let projector1: QuantizedMatrix, projector1Bias: [Float]
    let projector2: QuantizedMatrix, projector2Bias: [Float]

    init(gguf: GGUFFile, hyperparameters hp: MMProjHyperparameters) throws {
        self.gguf = gguf
        let d = hp.width
        func dims(_ name: String) throws -> [Int] {
            guard let info = gguf.tensors[name] else { throw MMProjError.badTensor(name: name, reason: "missing") }
            guard info.format == .f32 || info.format == .f16 else {
                throw MMProjError.badTensor(name: name, reason: "stored as \(info.format); only f32 and f16 are supported")
            }
            return info.dimensions
        }
        func vector(_ name: String, _ count: Int) throws -> [Float] {
            let shape = try dims(name)
            guard shape.reduce(1, *) == count else { throw MMProjError.badTensor(name: name, reason: "shape \(shape), expected \(count) values") }
            return try gguf.floats(name)
        }
        func optionalVector(_ name: String, _ count: Int) throws -> [Float]? {
            gguf.tensors[name] == nil ? nil : try vector(name, count)
        }
        /// A Linear weight: ggml ne = [in, out].
        func matrix(_ name: String, in columns: Int, out rows: Int) throws -> QuantizedMatrix {
            let shape = try dims(name)
            guard shape == [columns, rows] else { throw MMProjError.badTensor(name: name, reason: "shape \(shape), expected \([columns, rows])") }
            return try gguf.matrix(name)
        }
        func norm(_ prefix: String) throws -> (weight: [Float], bias: [Float])? {
            guard gguf.tensors[prefix + ".weight"] != nil else { return nil }
            return (try vector(prefix + ".weight", d), try vector(prefix + ".bias", d))
        }

        let p = hp.patchSize
        let patchShape = try dims("v.patch_embd.weight")
        guard patchShape == [p, p, 3, d] else {
            throw MMProjError.badTensor(name: "v.patch_embd.weight", reason: "shape \(patchShape), expected \([p, p, 3, d])")
        }
        let info = try gguf.tensor("v.patch_embd.weight")
        patchEmbedding = QuantizedMatrix(format: info.format, rows: d, columns: 3 * p * p, data: gguf.file.bytes + info.fileOffset)
        patchBias = try optionalVector("v.patch_embd.bias", d)
        classEmbedding = try optionalVector("v.class_embd", d)
        let positions = hp.patchCount + (classEmbedding == nil ? 0 : 1)
        positionEmbedding = try vector("v.position_embd.weight", positions * d)
        preNorm = try norm("v.pre_ln")
        postNorm = try norm("v.post_ln")
        blocks = try (0..<hp.blocksRun).map { i in
            let b = "v.blk.\(i)."
            guard let n1 = try norm(b + "ln1"), let n2 = try norm(b + "ln2") else {
                throw MMProjError.badTensor(name: b + "ln1/ln2", reason: "missing")
            }
            return VisionBlockWeights(
                norm1Weight: n1.weight, norm1Bias: n1.bias, norm2Weight: n2.weight, norm2Bias: n2.bias,
                query: try matrix(b + "attn_q.weight", in: d, out: d), key: try matrix(b + "attn_k.weight", in: d, out: d),
                value: try matrix(b + "attn_v.weight", in: d, out: d), output: try matrix(b + "attn_out.weight", in: d, out: d),
                up: try matrix(b + "ffn_up.weight", in: d, out: hp.feedForwardLength),
                down: try matrix(b + "ffn_down.weight", in: hp.feedForwardLength, out: d),
                queryBias: try vector(b + "attn_q.bias", d), keyBias: try vector(b + "attn_k.bias", d),
                valueBias: try vector(b + "attn_v.bias", d), outputBias: try vector(b + "attn_out.bias", d),
                upBias: try vector(b + "ffn_up.bias", hp.feedForwardLength), downBias: try vector(b + "ffn_down.bias", d))
        }
        let hiddenShape = try dims("mm.0.weight")
        guard hiddenShape.count == 2, hiddenShape[0] == d, hiddenShape[1] <= 4 * MMProjHyperparameters.maxWidth else {
            throw MMProjError.badTensor(name: "mm.0.weight", reason: "shape \(hiddenShape), expected [\(d), hidden]")
        }
        let hidden = hiddenShape[1]
        projector1 = try matrix("mm.0.weight", in: d, out: hidden)
        projector1Bias = try vector("mm.0.bias", hidden)
        projector2 = try matrix("mm.2.weight", in: hidden, out: hp.projectionWidth)
        projector2Bias = try vector("mm.2.bias", hp.projectionWidth)
    }
}
