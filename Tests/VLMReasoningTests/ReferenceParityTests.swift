// The CLIP front end against open_clip + Pillow (scripts/fixtures/make_reasoning_fixtures.py): label
// probabilities of the whole image, its regions and a look crop; attribution maps; the selected box
// and its pixels in the original image.
import Foundation
import Testing
import VLMCLIP
import VLMImage
@testable import VLMReasoning
import VLMTensor

struct ReasoningReference: Decodable {
    struct Region: Decodable { let box: [Int]; let probabilities: [Float] }
    struct Attribution: Decodable {
        let text: String
        let softmax: [Float]
        let min_max: [Float]
        let box: [Int]
        let pixel_box: [Int]
        let look_probabilities: [Float]
    }
    struct Case: Decodable {
        let model: String
        let image: String
        let logit_scale: Float
        let grid: [Int]
        let whole_probabilities: [Float]
        let regions: [Region]
        let attributions: [Attribution]
    }
    let labels: [String]
    let templates: [String]
    let region_grid: [Int]
    let box_mass: Float
    let cases: [Case]

    static let shared = try! JSONDecoder().decode(
        ReasoningReference.self, from: Data(contentsOf: TestPaths.fixtures.appendingPathComponent("reference.json")))
}

@Suite struct ReferenceParityTests {
    static let reference = ReasoningReference.shared

    /// Largest |ours - reference| over the label bank, ours given as top tags covering every label.
    func maxDifference(_ tags: [LabelProbability], _ expected: [Float], labels: [String]) -> Float {
        labels.enumerated().map { index, label in abs((tags.first { $0.label == label }?.probability ?? -1) - expected[index]) }.max()!
    }

    @Test(arguments: ReasoningReference.shared.cases.indices)
    func frontEndMatchesOpenCLIP(_ index: Int) throws {
        let reference = Self.reference, expected = reference.cases[index]
        let clip = expected.model == "rn-tiny" ? Models.rnTiny : Models.vitTiny
        var configuration = ReasoningConfiguration()
        configuration.labelBank = reference.labels
        configuration.labelTemplates = reference.templates
        configuration.tagsPerRegion = reference.labels.count
        configuration.regionGrid = (reference.region_grid[0], reference.region_grid[1])
        let frontEnd = try CLIPFrontEnd(clip: clip, tokenizer: Models.clipTokenizer, preprocessing: Models.preprocessing(for: clip),
                                        configuration: configuration)
        let image = Models.image(expected.image)
        let prepared = try frontEnd.prepare(image, precomputed: nil, compute: ComputeContext())
        #expect(abs(clip.logitScale - expected.logit_scale) < 1e-5)

        let evidence = try prepared.initialEvidence(compute: ComputeContext())
        #expect(evidence.count == 1 + expected.regions.count)
        #expect(maxDifference(evidence[0].tags, expected.whole_probabilities, labels: reference.labels) < 1e-5)
        for (item, region) in zip(evidence.dropFirst(), expected.regions) {
            guard case let .region(_, box) = item.source else { Issue.record("not a region"); continue }
            #expect([box.x, box.y, box.width, box.height] == region.box)
            #expect(maxDifference(item.tags, region.probabilities, labels: reference.labels) < 1e-5)
        }

        for attribution in expected.attributions {
            let map = try #require(try prepared.attribution(of: attribution.text, compute: ComputeContext()))
            #expect([map.gridHeight, map.gridWidth] == expected.grid)
            #expect(zip(map.scores, attribution.softmax).map { abs($0 - $1) }.max()! < 1e-5, "\(attribution.text.prefix(30))")
            let cells = try Attribution.similarities(text: Models.clipEmbedding(clip, attribution.text), cells: denseCells(clip, image))
            let minMax = Attribution.normalize(cells, .minMax, defaultTemperature: 1).scores
            #expect(zip(minMax, attribution.min_max).map { abs($0 - $1) }.max()! < 1e-5)

            let box = GridBox.smallest(holding: reference.box_mass, of: map.scores, gridHeight: map.gridHeight, gridWidth: map.gridWidth)
            #expect([box.row, box.column, box.rows, box.columns] == attribution.box)
            let pixels = prepared.pixelBox(of: box)
            #expect([pixels.x, pixels.y, pixels.width, pixels.height] == attribution.pixel_box)
            let look = try prepared.lookEvidence(at: pixels, step: 0, compute: ComputeContext())
            #expect(maxDifference(look.tags, attribution.look_probabilities, labels: reference.labels) < 1e-5)
        }
    }

    func denseCells(_ clip: CLIPModel, _ image: VLMImage.RGBImage) throws -> [[Float]] {
        try clip.encodeImageDense(Models.preprocessing(for: clip)(image), count: 1).features[0]
    }
}

extension Models {
    static func clipEmbedding(_ clip: CLIPModel, _ text: String) throws -> [Float] {
        try clip.encodeText([clipTokenizer.tokenize(text, contextLength: clip.config.text.contextLength)])[0]
    }
}
