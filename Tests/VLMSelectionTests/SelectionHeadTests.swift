import Foundation
import Testing
import VLMTensor
@testable import VLMSelection

/// One case of Fixtures/selector-gradients.json (scripts/fixtures/make_selector_fixtures.py: PyTorch autograd, float64).
struct SelectorGradientCase: Decodable {
    let name: String
    let width: Int
    let cells: Int
    let features: [[Float]]
    let texts: [[Float]]
    let targets: [[Float]]
    let bilinear: [Float]
    let logScale: Float
    let maps: [[Double]]
    let loss: Double
    let bilinearGradient: [Double]
    let logScaleGradient: Double

    static let all: [SelectorGradientCase] = {
        struct File: Decodable { let cases: [SelectorGradientCase] }
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/selector-gradients.json")
        return try! JSONDecoder().decode(File.self, from: Data(contentsOf: url)).cases
    }()

    var head: SelectionHead { SelectionHead(width: width, bilinear: bilinear, logScale: logScale) }
    var examples: [SelectionExample] {
        (0..<texts.count).map { n in
            let cells = (0..<self.cells).map { Array(features[n][$0 * width..<($0 + 1) * width]) }
            return SelectionExample(cells: cells, text: texts[n], target: targets[n])
        }
    }
}

func maxRelativeError(_ got: [Float], _ want: [Double]) -> Double {
    let scale = max(want.map(abs).max() ?? 0, 1e-12)
    return zip(got, want).map { abs(Double($0) - $1) }.max()! / scale
}

@Suite struct SelectionHeadTests {
    @Test(arguments: SelectorGradientCase.all.map(\.name))
    func lossAndGradientsMatchPyTorchAutograd(_ name: String) {
        let reference = SelectorGradientCase.all.first { $0.name == name }!
        let evaluation = SelectionObjective.evaluate(reference.head, on: reference.examples)
        #expect(abs(evaluation.loss - reference.loss) / abs(reference.loss) < 1e-5)
        #expect(maxRelativeError(evaluation.bilinearGradient, reference.bilinearGradient) < 1e-4)
        #expect(abs(Double(evaluation.logScaleGradient) - reference.logScaleGradient) < 1e-4 * max(1, abs(reference.logScaleGradient)))
        for (example, map) in zip(reference.examples, reference.maps) {
            #expect(maxRelativeError(reference.head.map(cells: example.cells, text: example.text), map) < 1e-5)
        }
    }

    @Test func untrainedHeadGivesThePlainSimilarityMap() {
        // The plain map: cosine of each cell with the text, softmax at temperature 1 / logit scale.
        let cells: [[Float]] = [[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0]], text: [Float] = [0.8, 0.6, 0]
        let logitScale: Float = 20
        let cosines: [Double] = [0.8, 0.6, 0.96]
        let e = cosines.map { exp(20 * $0) }
        let want = e.map { $0 / e.reduce(0, +) }
        let got = SelectionHead.identity(width: 3, logitScale: logitScale).map(cells: cells, text: text)
        #expect(maxRelativeError(got, want) < 1e-5)
    }

    @Test func boxTargetsWeighCellsByTheBoxPixelsTheyCover() {
        // A 96 px scene seen as a 2x2 map of 48 px cells; the 3x3 scene's centre cell [32, 64) covers
        // 16x16 pixels of each, a corner cell [0, 32) only the first.
        let cells = [PixelRect(x: 0, y: 0, width: 48, height: 48), PixelRect(x: 48, y: 0, width: 48, height: 48),
                     PixelRect(x: 0, y: 48, width: 48, height: 48), PixelRect(x: 48, y: 48, width: 48, height: 48)]
        #expect(SelectionTargets.fromBox(PixelRect(x: 32, y: 32, width: 32, height: 32), cells: cells) == [0.25, 0.25, 0.25, 0.25])
        #expect(SelectionTargets.fromBox(PixelRect(x: 0, y: 0, width: 32, height: 32), cells: cells) == [1, 0, 0, 0])
        #expect(SelectionTargets.fromBox(PixelRect(x: 32, y: 0, width: 32, height: 32), cells: cells) == [0.5, 0.5, 0, 0])
        #expect(SelectionTargets.fromBox(PixelRect(x: 100, y: 0, width: 5, height: 5), cells: cells) == nil)
        #expect(SelectionTargets.fromMap([1, 3, 0, 0], cellCount: 4) == [0.25, 0.75, 0, 0])
        #expect(SelectionTargets.fromMap([1, -1, 0, 0], cellCount: 4) == nil)
        #expect(SelectionMetrics.pointsInto([0.1, 0.2, 0.6, 0.1], cells: cells, box: PixelRect(x: 0, y: 64, width: 32, height: 32)))
        #expect(!SelectionMetrics.pointsInto([0.1, 0.2, 0.6, 0.1], cells: cells, box: PixelRect(x: 32, y: 32, width: 32, height: 32)))
        #expect(PixelRect(x: 0, y: 0, width: 48, height: 48).iou(PixelRect(x: 0, y: 0, width: 32, height: 32)) == 1024.0 / 2304.0)
    }
}
