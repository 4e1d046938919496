import Foundation
import Testing
import VLMTensor
import VLMVision

/// Deterministic, irregular values in [-1, 1] (samples of a sine at an irrational step), so failures reproduce.
struct SeededRandom {
    var phase: Float
    init(_ seed: Float) { phase = seed }
    mutating func floats(_ count: Int) -> [Float] {
        (0..<count).map { _ in
            phase += 2.399963  // the golden angle: no short period
            return sinf(phase * phase.squareRoot())
        }
    }
}

/// A tiny random ViT (8×8 images, 4×4 patches, width 8, two blocks) whose variants share weights.
struct TinyViT {
    static let imageSize = 8, patchSize = 4, width = 8, heads = 2, mlpWidth = 16, layers = 2
    static let patches = (imageSize / patchSize) * (imageSize / patchSize)
    let patchEmbedding: Linear, classEmbedding: [Float], patchPositions: [Float], classPosition: [Float]
    let blocks: [TransformerBlock<Linear>], preNorm: LayerNorm, postNorm: LayerNorm

    init() {
        let (d, p) = (Self.width, Self.patchSize)
        var random = SeededRandom(7)
        func layer(_ out: Int, _ inFeatures: Int) -> Linear {
            Linear(weight: Tensor(shape: [out, inFeatures], storage: random.floats(out * inFeatures).map { $0 * 0.5 }),
                   bias: Tensor(shape: [out], storage: random.floats(out).map { $0 * 0.1 }))
        }
        func norm() -> LayerNorm { LayerNorm(weight: random.floats(d).map { 1 + 0.3 * $0 }, bias: random.floats(d).map { 0.1 * $0 }) }
        patchEmbedding = layer(d, 3 * p * p)
        classEmbedding = random.floats(d)
        patchPositions = random.floats(Self.patches * d)
        classPosition = random.floats(d)
        var blocks: [TransformerBlock<Linear>] = []
        for _ in 0..<Self.layers {
            blocks.append(TransformerBlock(
                norm1: norm(), attention: SelfAttention(projection: .packed(layer(3 * d, d)), output: layer(d, d), heads: Self.heads),
                norm2: norm(), up: layer(Self.mlpWidth, d), activation: .gelu, down: layer(d, Self.mlpWidth), placement: .pre))
        }
        self.blocks = blocks
        preNorm = norm()
        postNorm = norm()
    }

    func architecture(_ classToken: ViTArchitecture.ClassToken, _ layout: ImageLayout = .channelsFirst,
                      positions: ViTArchitecture.PositionEncoding = .learned) -> ViTArchitecture {
        ViTArchitecture(imageSize: Self.imageSize, patchSize: Self.patchSize, width: Self.width, heads: Self.heads,
                        mlpWidth: Self.mlpWidth, layers: Self.layers, activation: .gelu, normPlacement: .pre,
                        layerNormEpsilon: 1e-5, layerNormAccumulation: .float, classToken: classToken, positions: positions,
                        pixelLayout: layout)
    }

    /// The same model with the class token (and its position embedding) where `classToken` says.
    func tower(_ classToken: ViTArchitecture.ClassToken, _ layout: ImageLayout = .channelsFirst,
               positions: ViTArchitecture.PositionEncoding = .learned) throws -> VisionTransformer<Linear> {
        try tower(classToken, layout, positions: positions, weights: { $0 })
    }

    /// The same model with every weight matrix converted (e.g. packed, as the CLIP towers run).
    func tower<Weights: LinearLayer>(_ classToken: ViTArchitecture.ClassToken, _ layout: ImageLayout = .channelsFirst,
                                     positions: ViTArchitecture.PositionEncoding = .learned,
                                     weights: (Linear) -> Weights) throws -> VisionTransformer<Weights> {
        let positionEmbedding = switch classToken {
        case .none: patchPositions
        case .first: classPosition + patchPositions
        case .last: patchPositions + classPosition
        }
        return try VisionTransformer(
            architecture: architecture(classToken, layout, positions: positions), patchEmbedding: weights(patchEmbedding),
            classEmbedding: classToken == .none ? nil : classEmbedding, positionEmbedding: positionEmbedding,
            preNorm: preNorm, blocks: blocks.map { $0.convertingWeights(weights) }, postNorm: postNorm)
    }
}

/// [image][channel][y][x] → [image][y][x][channel].
func channelsLast(_ pixels: [Float], count: Int, size: Int) -> [Float] {
    var out = pixels
    for b in 0..<count {
        for c in 0..<3 { for y in 0..<size { for x in 0..<size {
            out[b * 3 * size * size + (y * size + x) * 3 + c] = pixels[b * 3 * size * size + (c * size + y) * size + x]
        } } }
    }
    return out
}

@Suite struct VisionTransformerTests {
    let model = TinyViT()
    let count = 3
    var pixels: [Float] {
        var random = SeededRandom(11)
        return random.floats(count * 3 * TinyViT.imageSize * TinyViT.imageSize)
    }

    func run<Weights>(_ tower: VisionTransformer<Weights>, _ pixels: [Float], _ outputs: ViTOutputRequest) throws -> ViTOutputs {
        try tower.forward(pixels, count: count, outputs: outputs, scratch: ScratchBuffer(), compute: ComputeContext())
    }

    @Test func onePassGivesWhatSeparatePassesGive() throws {
        let tower = try model.tower(.first)
        let both = try run(tower, pixels, [.pooled, .patches])
        #expect(both.pooled == (try run(tower, pixels, .pooled)).pooled)
        #expect(both.patches == (try run(tower, pixels, .patches)).patches)
        #expect(both.pooled?.count == count * TinyViT.width)
        #expect(both.patches?.count == count * TinyViT.patches * TinyViT.width)
    }

    /// A pooled-only request runs the last block for the class token alone; with packed weights (as the
    /// CLIP towers run) its embedding is bit for bit the full pass's, wherever the class token sits, and a
    /// request that includes the patches still gets every token.
    @Test(arguments: [ViTArchitecture.ClassToken.first, .last])
    func pooledOnlyPassGivesTheFullPassesClassToken(classToken: ViTArchitecture.ClassToken) throws {
        let tower = try model.tower(classToken, weights: PackedLinear.init)
        let pooledOnly = try run(tower, pixels, .pooled)
        let both = try run(tower, pixels, [.pooled, .patches])
        #expect(pooledOnly.patches == nil)
        #expect(pooledOnly.pooled?.count == count * TinyViT.width)
        #expect(pooledOnly.pooled == both.pooled)
        #expect(both.patches == (try run(tower, pixels, .patches)).patches)
        #expect(both.patches?.count == count * TinyViT.patches * TinyViT.width)
        // The packed weights compute what the BLAS ones do (so the comparison above is of the real model).
        #expect(maxAbsDifference(pooledOnly.pooled!, try run(model.tower(classToken), pixels, .pooled).pooled!) < 1e-5)
    }

    /// Attention without a mask is permutation-equivariant: moving the class token (with its position
    /// embedding) from first to last changes no token's state beyond rounding.
    @Test func classTokenLastMatchesClassTokenFirst() throws {
        let first = try run(model.tower(.first), pixels, [.pooled, .patches])
        let last = try run(model.tower(.last), pixels, [.pooled, .patches])
        #expect(maxAbsDifference(first.pooled!, last.pooled!) < 1e-5)
        #expect(maxAbsDifference(first.patches!, last.patches!) < 1e-5)
        let none = try run(model.tower(.none), pixels, .patches)
        #expect(maxAbsDifference(first.patches!, none.patches!) > 1e-3)  // the class token does take part
    }

    @Test func pixelLayoutsReadTheSamePatches() throws {
        let nchw = try run(model.tower(.first, .channelsFirst), pixels, [.pooled, .patches])
        let nhwc = try run(model.tower(.first, .channelsLast), channelsLast(pixels, count: count, size: TinyViT.imageSize),
                           [.pooled, .patches])
        #expect(nchw.pooled == nhwc.pooled)
        #expect(nchw.patches == nhwc.patches)
    }

    @Test func unsupportedVariantsAndBadInputAreRefused() throws {
        #expect(throws: VisionError.notSupported("position encoding rotary2D")) { try model.tower(.first, positions: .rotary2D) }
        #expect(throws: VisionError.notSupported("position encoding interpolated")) { try model.tower(.first, positions: .interpolated) }
        #expect(throws: VisionError.notSupported("a pooled output without a class token")) {
            try run(model.tower(.none), pixels, .pooled)
        }
        #expect(throws: VisionError.self) { try run(model.tower(.first), [1, 2, 3], .pooled) }
        let secondCheck = CancellationToken(cancellingAtPoll: 2)
        #expect(throws: ComputeCancelled.self) {
            try model.tower(.first).forward(pixels, count: count, outputs: .pooled, scratch: ScratchBuffer(),
                                            compute: ComputeContext(cancellation: secondCheck))
        }
        #expect(secondCheck.polls == 2)
    }
}
