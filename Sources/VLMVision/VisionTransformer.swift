// The Vision Transformer (Dosovitskiy et al. 2020) as the CLIP-family references run it:
//
//   pixels -> p×p patches -> linear patch embedding -> (+ class token) -> + position embeddings
//          -> (pre-LayerNorm) -> encoder blocks -> (post-LayerNorm) -> pooled token and/or patch tokens
//
// The references differ in details, named in `ViTArchitecture`: where the class token goes (open_clip
// prepends it; llama.cpp's CLIP graph appends it), how pixels are laid out, the MLP activation, the
// LayerNorm accumulation. Loaders (VLMCLIP for open_clip checkpoints, VLMReasoning for mmproj GGUF files)
// build the architecture from their config and hand the weights over.
import VLMTensor

public enum VisionError: Error, Equatable, CustomStringConvertible {
    case notSupported(String)
    case invalidInput(String)
    case shapeMismatch(String)

    public var description: String {
        switch self {
        case let .notSupported(what): "vision transformer: \(what) is not supported yet"
        case let .invalidInput(what): "vision transformer input: \(what)"
        case let .shapeMismatch(what): "vision transformer weights: \(what)"
        }
    }
}

/// The shape of a ViT and the variant of each part where the references differ.
public struct ViTArchitecture: Sendable, Equatable {
    /// Where the class token sits in the sequence.
    public enum ClassToken: Sendable, Equatable {
        case none
        /// Before the patches (open_clip, the paper).
        case first
        /// After the patches (llama.cpp's CLIP graph concatenates it last).
        case last
    }

    /// How positions enter the model.
    public enum PositionEncoding: Sendable, Equatable {
        /// A learned embedding per sequence position, added after the patch embedding.
        case learned
        /// Learned embeddings resampled to another grid (open_clip at a non-native image size).
        case interpolated
        /// Rotary embeddings over the two grid axes, applied to queries and keys (Qwen2-VL, Pixtral).
        case rotary2D
    }

    public var imageSize: Int
    public var patchSize: Int
    public var width: Int
    public var heads: Int
    public var mlpWidth: Int
    /// Blocks run (a tower may stop before its last stored block).
    public var layers: Int
    public var activation: Activation
    public var normPlacement: NormPlacement
    public var layerNormEpsilon: Float
    public var layerNormAccumulation: LayerNorm.Accumulation
    /// LayerNorm, or RMSNorm (Qwen2.5-VL).
    public var normStatistic = LayerNorm.Statistic.standardDeviation
    public var classToken: ClassToken
    public var positions: PositionEncoding
    public var pixelLayout: ImageLayout

    public init(imageSize: Int, patchSize: Int, width: Int, heads: Int, mlpWidth: Int, layers: Int, activation: Activation,
                normPlacement: NormPlacement, layerNormEpsilon: Float, layerNormAccumulation: LayerNorm.Accumulation,
                classToken: ClassToken, positions: PositionEncoding, pixelLayout: ImageLayout) {
        (self.imageSize, self.patchSize, self.width, self.heads, self.mlpWidth, self.layers) =
            (imageSize, patchSize, width, heads, mlpWidth, layers)
        (self.activation, self.normPlacement, self.layerNormEpsilon, self.layerNormAccumulation) =
            (activation, normPlacement, layerNormEpsilon, layerNormAccumulation)
        (self.classToken, self.positions, self.pixelLayout) = (classToken, positions, pixelLayout)
    }

    public var gridSide: Int { imageSize / patchSize }
    public var patchCount: Int { gridSide * gridSide }
    public var sequenceLength: Int { patchCount + (classToken == .none ? 0 : 1) }
    /// The class token's position in the sequence, if there is one.
    public var classTokenPosition: Int? {
        switch classToken {
        case .none: nil
        case .first: 0
        case .last: patchCount
        }
    }
    /// The patch tokens' positions in the sequence.
    public var patchPositions: Range<Int> {
        let first = classToken == .first ? 1 : 0
        return first..<(first + patchCount)
    }

    /// A LayerNorm of this architecture's epsilon and accumulation.
    public func layerNorm(weight: [Float], bias: [Float]) -> LayerNorm {
        var norm = LayerNorm(weight: weight, bias: bias, eps: layerNormEpsilon, accumulation: layerNormAccumulation)
        norm.statistic = normStatistic
        return norm
    }
}

/// Which token states a forward pass returns; both come from the same pass.
public struct ViTOutputRequest: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// The class token's state, [count, width].
    public static let pooled = ViTOutputRequest(rawValue: 1)
    /// The patch tokens' states in row-major grid order, [count, patchCount, width].
    public static let patches = ViTOutputRequest(rawValue: 2)
}

/// Token states after the final LayerNorm (if the tower has one), as requested.
public struct ViTOutputs: Sendable {
    public var pooled: [Float]?
    public var patches: [Float]?
}

/// A ViT image tower in inference mode.
public struct VisionTransformer<Weights: LinearLayer>: Sendable {
    public let architecture: ViTArchitecture
    /// [width, 3·p·p] over patches flattened as (channel, y, x): a p×p, stride-p convolution's kernel.
    public let patchEmbedding: Weights
    public let classEmbedding: [Float]?
    /// [sequenceLength, width], in sequence order (class token included where it sits).
    public let positionEmbedding: [Float]
    public let preNorm: LayerNorm?
    public let encoder: TransformerEncoder<Weights>
    public let postNorm: LayerNorm?

    /// Checks the weights against `architecture`; throws `VisionError.notSupported` for variants not
    /// implemented yet.
    public init(architecture a: ViTArchitecture, patchEmbedding: Weights, classEmbedding: [Float]?, positionEmbedding: [Float],
                preNorm: LayerNorm?, blocks: [TransformerBlock<Weights>], postNorm: LayerNorm?) throws {
        guard a.positions == .learned else { throw VisionError.notSupported("position encoding \(a.positions)") }
        guard a.patchSize > 0, a.imageSize % a.patchSize == 0 else {
            throw VisionError.shapeMismatch("patch size \(a.patchSize) does not divide image size \(a.imageSize)")
        }
        let patchWidth = 3 * a.patchSize * a.patchSize
        guard patchEmbedding.inFeatures == patchWidth, patchEmbedding.outFeatures == a.width else {
            throw VisionError.shapeMismatch(
                "patch embedding is [\(patchEmbedding.outFeatures), \(patchEmbedding.inFeatures)], expected [\(a.width), \(patchWidth)]")
        }
        guard (classEmbedding == nil) == (a.classToken == .none), classEmbedding.map({ $0.count == a.width }) ?? true else {
            throw VisionError.shapeMismatch("class embedding has \(classEmbedding?.count ?? 0) values for class token \(a.classToken)")
        }
        guard positionEmbedding.count == a.sequenceLength * a.width else {
            throw VisionError.shapeMismatch("position embedding has \(positionEmbedding.count) values, expected \(a.sequenceLength)×\(a.width)")
        }
        guard blocks.count == a.layers, blocks.allSatisfy({
            $0.width == a.width && $0.attention.heads == a.heads && $0.up.outFeatures == a.mlpWidth
                && $0.activation == a.activation && $0.placement == a.normPlacement
        }) else {
            throw VisionError.shapeMismatch(
                "\(blocks.count) blocks, expected \(a.layers) of width \(a.width), \(a.heads) heads, MLP \(a.mlpWidth), \(a.activation), \(a.normPlacement)-norm")
        }
        guard [preNorm, postNorm].allSatisfy({ $0 == nil || $0!.width == a.width }) else {
            throw VisionError.shapeMismatch("pre/post layer norms must be \(a.width) wide")
        }
        architecture = a
        self.patchEmbedding = patchEmbedding
        self.classEmbedding = classEmbedding
        self.positionEmbedding = positionEmbedding
        self.preNorm = preNorm
        encoder = TransformerEncoder(blocks: blocks)
        self.postNorm = postNorm
    }

    /// Values per image in `architecture.pixelLayout`.
    public var pixelsPerImage: Int { 3 * architecture.imageSize * architecture.imageSize }

    /// One pass over `count` images, returning the requested token states; throws `ComputeCancelled`
    /// between blocks once the context is cancelled.
    public func forward(_ pixels: [Float], count: Int, outputs: ViTOutputRequest, scratch: ScratchBuffer,
                        compute: ComputeContext) throws -> ViTOutputs {
        let a = architecture
        guard count >= 0, pixels.count == count * pixelsPerImage else {
            throw VisionError.invalidInput("expected \(count) images of 3×\(a.imageSize)×\(a.imageSize) values, got \(pixels.count)")
        }
        guard !outputs.contains(.pooled) || a.classToken != .none else {
            throw VisionError.notSupported("a pooled output without a class token")
        }
        var x = embed(pixels, count: count, compute: compute)
        preNorm?(&x, rows: count * a.sequenceLength, compute: compute)
        let sequenceLengths = [Int](repeating: a.sequenceLength, count: count)
        var result = ViTOutputs()
        if outputs == .pooled, let position = a.classTokenPosition, !encoder.blocks.isEmpty {
            // Only the class token is wanted: the last block need not finish the patch tokens.
            var pooled = try encoder.states(at: position, of: &x, sequenceLengths: sequenceLengths, scratch: scratch, compute: compute)
            postNorm?(&pooled, rows: count, compute: compute)
            result.pooled = pooled
            return result
        }
        try encoder.apply(&x, sequenceLengths: sequenceLengths, causal: false, scratch: scratch, compute: compute)
        if outputs.contains(.pooled), let position = a.classTokenPosition {
            result.pooled = finalStates(x, count: count, rows: position..<(position + 1), compute: compute)
        }
        if outputs.contains(.patches) { result.patches = finalStates(x, count: count, rows: a.patchPositions, compute: compute) }
        return result
    }

    /// Patch embeddings with the class token in its place, plus position embeddings: [count, sequence, width].
    private func embed(_ pixels: [Float], count: Int, compute: ComputeContext) -> [Float] {
        let a = architecture, d = a.width, n = a.patchCount, sequence = a.sequenceLength
        let patchRows = nonOverlappingPatches(pixels, images: count, size: a.imageSize, patch: a.patchSize, layout: a.pixelLayout)
        let patches = patchEmbedding.forward(patchRows, rows: count * n, compute: compute)
        let patchStart = a.patchPositions.lowerBound
        var x = [Float](repeating: 0, count: count * sequence * d)
        for b in 0..<count {
            let base = b * sequence * d
            for i in 0..<(n * d) { x[base + patchStart * d + i] = patches[b * n * d + i] }
            if let cls = classEmbedding, let row = a.classTokenPosition {
                for j in 0..<d { x[base + row * d + j] = cls[j] }
            }
            for i in 0..<(sequence * d) { x[base + i] += positionEmbedding[i] }
        }
        return x
    }

    /// Sequence rows `rows` of every image, after the post-LayerNorm: [count, rows.count, width].
    private func finalStates(_ x: [Float], count: Int, rows: Range<Int>, compute: ComputeContext) -> [Float] {
        let d = architecture.width, sequence = architecture.sequenceLength
        var out = [Float]()
        out.reserveCapacity(count * rows.count * d)
        for b in 0..<count { out += x[((b * sequence + rows.lowerBound) * d)..<((b * sequence + rows.upperBound) * d)] }
        postNorm?(&out, rows: count * rows.count, compute: compute)
        return out
    }
}
