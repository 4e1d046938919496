import Foundation
import Testing
import VLMTensor
@testable import VLMSelection

/// A task the plain similarity map gets wrong by construction: each query's text embedding is the
/// feature of a *different* cell than its target (the "wrong" cell under a fixed permutation of
/// directions), so cosine similarity points at the wrong cell; a bilinear form can learn the
/// permutation.
struct PermutedTask {
    let examples: [SelectionExample]

    init(count: Int, width: Int = 8, cells: Int = 4, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        func unit(_ v: [Float]) -> [Float] { l2Normalized(v) }
        examples = (0..<count).map { _ in
            // Each cell holds one basis direction plus noise; the query of direction k is direction (k+1) mod width.
            let directions = Array(0..<width).shuffled(using: &rng).prefix(cells)
            let features = directions.map { k in unit((0..<width).map { $0 == k ? 1 : Float(rng.nextGaussian()) * 0.1 }) }
            let target = Int(rng.nextIndex(below: cells))
            let text = unit((0..<width).map { $0 == (directions[directions.startIndex + target] + 1) % width ? 1 : 0 })
            return SelectionExample(cells: features, text: text, target: (0..<cells).map { $0 == target ? 1 : 0 })
        }
    }
}

@Suite struct SelectorTrainingTests {
    @Test func trainingLearnsWhatTheSimilarityMapMissesAndKeepsTheBestState() throws {
        let train = PermutedTask(count: 400, seed: 1).examples, held = PermutedTask(count: 100, seed: 2).examples
        let start = SelectionHead.identity(width: 8, logitScale: 10)
        var configuration = SelectorTrainingConfiguration()
        configuration.steps = 150
        configuration.learningRate = 0.05
        configuration.batchSize = 64
        var reports: [SelectorTrainingStep] = []
        let outcome = try SelectorTrainer(configuration: configuration).train(from: start, training: train, validation: held) { reports.append($0) }
        #expect(reports.count == 150 && reports.map(\.step) == Array(1...150))
        let before = SelectorTrainer.validationFigures(start, held), after = SelectorTrainer.validationFigures(outcome.best, held)
        #expect(before.topCell < 0.4)  // the plain map points at the wrong cell (chance is 0.25)
        #expect(after.topCell > 0.9)
        #expect(outcome.bestValidationLoss < outcome.initialValidationLoss)
        #expect(outcome.bestValidationLoss == reports.compactMap(\.validationLoss).min())
    }

    @Test func cancellingReturnsTheBestStateSoFar() throws {
        let train = PermutedTask(count: 100, seed: 3).examples, held = PermutedTask(count: 50, seed: 4).examples
        var configuration = SelectorTrainingConfiguration()
        configuration.steps = 1000
        configuration.validateEvery = 5
        configuration.learningRate = 0.05
        var steps = 0
        let token = CancellationToken()
        let outcome = try SelectorTrainer(configuration: configuration).train(
            from: .identity(width: 8, logitScale: 10), training: train, validation: held,
            onStep: { _ in steps += 1; if steps >= 20 { token.cancel() } }, compute: ComputeContext(cancellation: token))
        #expect(outcome.cancelled && outcome.stepsRun == 20)
        #expect(outcome.bestStep > 0 && outcome.bestStep <= 20)
        #expect(abs(SelectorTrainer.validationFigures(outcome.best, held).loss - outcome.bestValidationLoss) < 1e-9)
    }

    @Test func savedSelectorsRoundTripAndForeignFilesAreRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("selector-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var head = SelectionHead.identity(width: 4, logitScale: 30)
        head.bilinear[3] = 0.5
        let saved = SavedSelector(head: head, clipIdentity: "abc123", clipName: "demo", cropGrid: 3, details: "{\"steps\":1}")
        let url = directory.appendingPathComponent("s.safetensors")
        try saved.save(to: url)
        let loaded = try SavedSelector.load(from: url)
        #expect(loaded.head == head && loaded.clipIdentity == "abc123" && loaded.cropGrid == 3 && loaded.details == "{\"steps\":1}")
        let native = SavedSelector(head: head, clipIdentity: "abc123", clipName: "demo", cropGrid: 0, resolution: 128, details: "{}")
        try native.save(to: url)
        #expect(try SavedSelector.load(from: url).resolution == 128)
        // A file written before resolutions existed (no metadata key) scored the model's own grid.
        try Self.writeSelectorFile(head, metadata: ["format": "vlmd-selector", "version": "1", "clip_identity": "abc123", "crop_grid": "0"],
                                   to: url)
        #expect(try SavedSelector.load(from: url).resolution == 0)
        try Self.writeSelectorFile(head, metadata: ["format": "vlmd-selector", "version": "1", "clip_identity": "abc123", "crop_grid": "2",
                                                    "resolution": "128"], to: url)
        #expect(throws: SelectionError.self) { try SavedSelector.load(from: url) }
        let foreign = directory.appendingPathComponent("f.safetensors")
        try Data("not a safetensors file".utf8).write(to: foreign)
        #expect(throws: SelectionError.self) { try SavedSelector.load(from: foreign) }
    }

    /// A selector file written by hand (safetensors: header length, JSON header, little-endian F32 data),
    /// with exactly the metadata given.
    static func writeSelectorFile(_ head: SelectionHead, metadata: [String: String], to url: URL) throws {
        let count = head.bilinear.count
        let header: [String: Any] = [
            "__metadata__": metadata,
            "bilinear": ["dtype": "F32", "shape": [head.width, head.width], "data_offsets": [0, 4 * count]],
            "log_scale": ["dtype": "F32", "shape": [1], "data_offsets": [4 * count, 4 * count + 4]]]
        let json = try JSONSerialization.data(withJSONObject: header)
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        for value in head.bilinear + [head.logScale] { withUnsafeBytes(of: value.bitPattern.littleEndian) { file.append(contentsOf: $0) } }
        try file.write(to: url)
    }
}
