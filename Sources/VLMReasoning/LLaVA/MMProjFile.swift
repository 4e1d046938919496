// The hyperparameters and tensors of a LLaVA-1.5-style projector file ("mmproj"), in llama.cpp's
// `clip.*` GGUF layout: a CLIP ViT vision tower (`v.*`) and a two-layer MLP projector (`mm.0`, `mm.2`).
//
// Read with VLMLanguage's GGUF reader; every key and tensor is checked (presence, type, shape) and any
// fault is reported naming it. Matrices stay views into the mapped file (F32, F16 or a ggml block format
// such as Q8_0, expanded to F32 for each product).
import Foundation
import VLMLanguage
import VLMTensor
import VLMVision

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

    /// `clip.projector_type` (older files: `clip.vision.projector_type`).
    static func projectorType(_ gguf: GGUFFile) throws -> String {
        let type = (try? gguf.string("clip.projector_type")) ?? (try? gguf.string("clip.vision.projector_type"))
        guard let type else { throw MMProjError.badKey(key: "clip.projector_type", reason: "missing") }
        return type
    }

    /// Reads the tower's keys of a file whose `clip.projector_type` must be `projector`.
    init(gguf: GGUFFile, projector expected: String = "mlp") throws {
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
        let projector = try Self.projectorType(gguf)
        guard projector == expected else { throw MMProjError.notSupported("projector type '\(projector)' is not '\(expected)'") }

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

extension ViTArchitecture {
    /// The tower of a LLaVA-1.5 mmproj as llama.cpp's CLIP graph runs it: class token (if any) after
    /// the patches, learned positions, pre-norm blocks with double-accumulated LayerNorms (ggml_norm),
    /// tanh GELU (`clip.use_gelu`) or quick GELU, each through ggml's fp16 tables as its CPU backend runs them,
    /// [y][x][channel] pixels.
    init(mmproj hp: MMProjHyperparameters, hasClassToken: Bool) {
        self.init(imageSize: hp.imageSize, patchSize: hp.patchSize, width: hp.width, heads: hp.headCount,
                  mlpWidth: hp.feedForwardLength, layers: hp.blocksRun, activation: hp.useGELU ? .geluTanhHalfTable : .quickGELUHalfTable,
                  normPlacement: .pre, layerNormEpsilon: hp.layerNormEpsilon, layerNormAccumulation: .double,
                  classToken: hasClassToken ? .last : .none, positions: .learned, pixelLayout: .channelsLast)
    }
}

/// Reads an mmproj's tensors, checking each one's presence, format and shape and naming it in any error.
/// Matrices may be stored in any format `QuantizedMatrix` expands (F32, F16, Q8_0 as quantised mmproj builds
/// use, and the other ggml block formats); vectors and the patch kernel are F32 or F16.
struct MMProjTensors {
    let gguf: GGUFFile

    private static let floatFormats: Set<WeightFormat> = [.f32, .f16]

    func dims(_ name: String, formats: Set<WeightFormat> = MMProjTensors.floatFormats) throws -> [Int] {
        guard let info = gguf.tensors[name] else { throw MMProjError.badTensor(name: name, reason: "missing") }
        guard formats.contains(info.format) else {
            let allowed = formats.map(\.rawValue).sorted().joined(separator: ", ")
            throw MMProjError.badTensor(name: name, reason: "stored as \(info.format); supported: \(allowed)")
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

    /// `prefix.weight` (ggml ne = [in, out]) and, if `bias`, `prefix.bias`.
    func linear(_ prefix: String, in columns: Int, out rows: Int, bias: Bool = true) throws -> QuantizedLinear {
        let name = prefix + ".weight"
        let shape = try dims(name, formats: Set(WeightFormat.allCases))
        guard shape == [columns, rows] else { throw MMProjError.badTensor(name: name, reason: "shape \(shape), expected \([columns, rows])") }
        return QuantizedLinear(weight: try gguf.matrix(name), bias: bias ? try vector(prefix + ".bias", rows) : nil)
    }

    func optionalNorm(_ prefix: String, _ a: ViTArchitecture) throws -> LayerNorm? {
        guard gguf.tensors[prefix + ".weight"] != nil else { return nil }
        // RMSNorms (Qwen2.5-VL) are stored without a bias.
        let bias = a.normStatistic == .rootMeanSquare ? try optionalVector(prefix + ".bias", a.width) : try vector(prefix + ".bias", a.width)
        return a.layerNorm(weight: try vector(prefix + ".weight", a.width), bias: bias ?? [Float](repeating: 0, count: a.width))
    }

    func norm(_ prefix: String, _ a: ViTArchitecture) throws -> LayerNorm {
        guard let norm = try optionalNorm(prefix, a) else { throw MMProjError.badTensor(name: prefix + ".weight", reason: "missing") }
        return norm
    }

    /// The ViT `v.*` of architecture `a`: patch kernel (and bias), positions, optional pre/post LayerNorms,
    /// blocks 0..<a.layers.
    func visionTransformer(_ a: ViTArchitecture, classEmbedding: [Float]?) throws -> VisionTransformer<QuantizedLinear> {
        let d = a.width
        let patchEmbedding = try patchKernel("v.patch_embd.weight", a, bias: try optionalVector("v.patch_embd.bias", d))
        do {
            return try VisionTransformer(
                architecture: a, patchEmbedding: patchEmbedding, classEmbedding: classEmbedding,
                positionEmbedding: try vector("v.position_embd.weight", a.sequenceLength * d),
                preNorm: try optionalNorm("v.pre_ln", a), blocks: try blocks(a), postNorm: try optionalNorm("v.post_ln", a))
        } catch let error as VisionError {
            throw MMProjError.notSupported("\(error)")
        }
    }

    /// A p×p patch convolution's kernel `name` as a [width][3 * p * p] matrix, each row in (channel, y, x)
    /// order: ggml's conv kernel ne = [p, p, 3, width].
    func patchKernel(_ name: String, _ a: ViTArchitecture, bias: [Float]? = nil) throws -> QuantizedLinear {
        let d = a.width, p = a.patchSize
        let patchShape = try dims(name)
        guard patchShape == [p, p, 3, d] else {
            throw MMProjError.badTensor(name: name, reason: "shape \(patchShape), expected \([p, p, 3, d])")
        }
        let info = try gguf.tensor(name)
        // OpenBLAS's product: with it an F16 patch convolution sums closely enough to mtmd's that the idefics3
        // fixture's embeddings are bit-identical (its Q8_0 connector rounds activations to int8, so another
        // summation order shows as whole int8 steps: 5e-3 relative with the packed product). One product an image.
        return QuantizedLinear(weight: QuantizedMatrix(format: info.format, rows: d, columns: 3 * p * p, data: gguf.file.bytes + info.fileOffset),
                               bias: bias, expandedProduct: .blas)
    }

    /// The encoder blocks `v.blk.0..<a.layers`.
    func blocks(_ a: ViTArchitecture) throws -> [TransformerBlock<QuantizedLinear>] {
        let d = a.width
        return try (0..<a.layers).map { i in
            let b = "v.blk.\(i)."
            return TransformerBlock(
                norm1: try norm(b + "ln1", a),
                attention: SelfAttention(
                    projection: .separate(query: try linear(b + "attn_q", in: d, out: d), key: try linear(b + "attn_k", in: d, out: d),
                                          value: try linear(b + "attn_v", in: d, out: d)),
                    output: try linear(b + "attn_out", in: d, out: d), heads: a.heads),
                norm2: try norm(b + "ln2", a),
                up: try linear(b + "ffn_up", in: d, out: a.mlpWidth), activation: a.activation,
                down: try linear(b + "ffn_down", in: a.mlpWidth, out: d), placement: a.normPlacement,
                gate: gguf.tensors[b + "ffn_gate.weight"] == nil ? nil : try linear(b + "ffn_gate", in: d, out: a.mlpWidth))
        }
    }
}

/// The tower and projector of a LLaVA-1.5 mmproj file. `@unchecked Sendable`: immutable views into the
/// mapping that `gguf` keeps alive.
final class MMProjWeights: @unchecked Sendable {
    let gguf: GGUFFile
    let vit: VisionTransformer<QuantizedLinear>
    /// The projector: mm.2(GELU(mm.0(x))).
    let projector1: QuantizedLinear, projector2: QuantizedLinear

    init(gguf: GGUFFile, hyperparameters hp: MMProjHyperparameters) throws {
        self.gguf = gguf
        let tensors = MMProjTensors(gguf: gguf), d = hp.width
        let classEmbedding = try tensors.optionalVector("v.class_embd", d)
        vit = try tensors.visionTransformer(ViTArchitecture(mmproj: hp, hasClassToken: classEmbedding != nil), classEmbedding: classEmbedding)
        let hiddenShape = try tensors.dims("mm.0.weight", formats: Set(WeightFormat.allCases))
        guard hiddenShape.count == 2, hiddenShape[0] == d, hiddenShape[1] <= 4 * MMProjHyperparameters.maxWidth else {
            throw MMProjError.badTensor(name: "mm.0.weight", reason: "shape \(hiddenShape), expected [\(d), hidden]")
        }
        let hidden = hiddenShape[1]
        projector1 = try tensors.linear("mm.0", in: d, out: hidden)
        projector2 = try tensors.linear("mm.2", in: hidden, out: hp.projectionWidth)
    }
}
