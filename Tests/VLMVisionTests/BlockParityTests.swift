import Foundation
import Testing
import VLMTensor
import VLMVision

/// PyTorch's values (scripts/fixtures/make_vision_fixtures.py).
struct BlockFixtures: Decodable {
    struct Activations: Decodable { let input, gelu, geluTanh: [Float] }
    struct Block: Decodable {
        let normFirst: Bool
        let activation: String
        let width, heads, mlpWidth, sequence, batch: Int
        let inProjWeight, inProjBias, outProjWeight, outProjBias: [Float]
        let upWeight, upBias, downWeight, downBias: [Float]
        let norm1Weight, norm1Bias, norm2Weight, norm2Bias: [Float]
        let input, output: [Float]
    }
    let activations: Activations
    let blocks: [Block]

    static let shared: BlockFixtures = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/blocks.json")
        return try! JSONDecoder().decode(BlockFixtures.self, from: Data(contentsOf: url))
    }()
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "lengths \(a.count) and \(b.count)")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

func linear(_ weight: [Float], _ bias: [Float], out: Int, in inFeatures: Int) -> Linear {
    Linear(weight: Tensor(shape: [out, inFeatures], storage: weight), bias: Tensor(shape: [out], storage: bias))
}

extension BlockFixtures.Block {
    var block: TransformerBlock<Linear> { block(projection: .packed(linear(inProjWeight, inProjBias, out: 3 * width, in: width))) }

    /// The same block with in_proj split into its query, key and value thirds (llama.cpp's layout).
    var separateProjectionsBlock: TransformerBlock<Linear> {
        let (d, w) = (width, width * width)
        func third(_ i: Int) -> Linear {
            linear(Array(inProjWeight[(i * w)..<((i + 1) * w)]), Array(inProjBias[(i * d)..<((i + 1) * d)]), out: d, in: d)
        }
        return block(projection: .separate(query: third(0), key: third(1), value: third(2)))
    }

    func block(projection: SelfAttention<Linear>.Projection) -> TransformerBlock<Linear> {
        TransformerBlock(
            norm1: LayerNorm(weight: norm1Weight, bias: norm1Bias),
            attention: SelfAttention(projection: projection,
                                     output: linear(outProjWeight, outProjBias, out: width, in: width), heads: heads),
            norm2: LayerNorm(weight: norm2Weight, bias: norm2Bias),
            up: linear(upWeight, upBias, out: mlpWidth, in: width), activation: activation == "gelu" ? .gelu : .geluTanh,
            down: linear(downWeight, downBias, out: width, in: mlpWidth), placement: normFirst ? .pre : .post)
    }
}

@Suite struct BlockParityTests {
    @Test func geluFormsMatchPyTorch() {
        let reference = BlockFixtures.shared.activations
        var exact = reference.input, tanh = reference.input
        Activation.gelu(&exact, compute: ComputeContext())
        Activation.geluTanh(&tanh, compute: ComputeContext())
        #expect(maxAbsDifference(exact, reference.gelu) < 1e-6)
        #expect(maxAbsDifference(tanh, reference.geluTanh) < 1e-6)
        // The two forms differ by far more than the tolerance, so each check tells them apart.
        #expect(maxAbsDifference(reference.gelu, reference.geluTanh) > 1e-4)
    }

    @Test(arguments: 0..<4) func blockMatchesTransformerEncoderLayer(index: Int) {
        let reference = BlockFixtures.shared.blocks[index]
        var x = reference.input
        reference.block.apply(&x, sequenceLengths: [Int](repeating: reference.sequence, count: reference.batch), causal: false,
                              scratch: ScratchBuffer(), compute: ComputeContext())
        let error = maxAbsDifference(x, reference.output)
        #expect(error < 2e-5, "\(reference.normFirst ? "pre" : "post")-norm \(reference.activation): max error \(error)")
    }

    /// Each variant is taken: the other norm placement or GELU form gives a clearly different output.
    @Test func variantsAreDistinguishable() {
        for reference in BlockFixtures.shared.blocks {
            let b = reference.block
            let other = TransformerBlock(norm1: b.norm1, attention: b.attention, norm2: b.norm2, up: b.up, activation: b.activation,
                                         down: b.down, placement: b.placement == .pre ? .post : .pre)
            var x = reference.input
            other.apply(&x, sequenceLengths: [Int](repeating: reference.sequence, count: reference.batch), causal: false,
                        scratch: ScratchBuffer(), compute: ComputeContext())
            #expect(maxAbsDifference(x, reference.output) > 1e-2)
        }
    }

    /// The pruned block (`applied`: one kept row per sequence, the last block of a tower asked only for its
    /// class token) gives PyTorch's output at that row, and the full block's own value there, for both norm
    /// placements and both projection layouts, at the first and the last position.
    @Test(arguments: 0..<4) func keptRowMatchesTheFullBlock(index: Int) {
        let reference = BlockFixtures.shared.blocks[index]
        let (d, n) = (reference.width, reference.sequence)
        let lengths = [Int](repeating: n, count: reference.batch)
        for block in [reference.block, reference.separateProjectionsBlock] {
            var full = reference.input
            block.apply(&full, sequenceLengths: lengths, causal: false, scratch: ScratchBuffer(), compute: ComputeContext())
            for position in [0, n - 1] {
                let rows = (0..<reference.batch).map { $0 * n + position }
                let kept = block.applied(reference.input, sequenceLengths: lengths, keepingPosition: position, compute: ComputeContext())
                #expect(maxAbsDifference(kept, selectRows(reference.output, rows, width: d)) < 2e-5)
                #expect(maxAbsDifference(kept, selectRows(full, rows, width: d)) < 1e-6)
            }
        }
    }

    /// With packed weights (the CLIP towers' layers) every row's product is the same arithmetic whatever
    /// the row count, so the kept rows are bit for bit the full block's, also for ragged sequences.
    @Test(arguments: 0..<4) func keptRowOfPackedWeightsIsExact(index: Int) {
        let reference = BlockFixtures.shared.blocks[index]
        let block = reference.block.convertingWeights(PackedLinear.init)
        let (d, lengths, position) = (reference.width, [3, 7], 2)
        var full = reference.input
        block.apply(&full, sequenceLengths: lengths, causal: false, scratch: ScratchBuffer(), compute: ComputeContext())
        let kept = block.applied(reference.input, sequenceLengths: lengths, keepingPosition: position, compute: ComputeContext())
        #expect(kept == selectRows(full, [position, 3 + position], width: d))
        #expect(kept != selectRows(reference.input, [position, 3 + position], width: d))
    }
}

/// Rows `rows` of a [_, width] matrix.
func selectRows(_ x: [Float], _ rows: [Int], width: Int) -> [Float] {
    rows.flatMap { x[($0 * width)..<(($0 + 1) * width)] }
}
