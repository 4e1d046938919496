import Foundation
import VLMTensor

/// How a selection head is trained.
public struct SelectorTrainingConfiguration: Sendable, Equatable, Codable {
    public var steps: Int = 300
    public var learningRate: Float = 0.003
    /// Examples per step (drawn without replacement per epoch, seeded); 0 for the full set.
    public var batchSize: Int = 256
    /// Validate (and possibly keep the state as the best) every this many steps, and after the last.
    public var validateEvery: Int = 10
    public var seed: UInt64 = 0
    /// 0: score the model's dense cells; G: score the pooled embeddings of a G×G grid of crops (each
    /// crop seen at the tower's full resolution, at G² tower passes per image).
    public var cropGrid: Int = 0
    /// The side the image tower sees each image at for the dense cells; 0: the model's own image size.
    public var resolution: Int = 0
    public static let maximumCropGrid = 8
    public init() {}

    public func validate() throws(SelectionError) {
        guard steps > 0 else { throw .invalidInput("steps must be at least 1") }
        guard learningRate > 0, learningRate.isFinite else { throw .invalidInput("learningRate must be a positive number") }
        guard batchSize >= 0 else { throw .invalidInput("batchSize must be 0 (all) or positive") }
        guard validateEvery > 0 else { throw .invalidInput("validateEvery must be at least 1") }
        guard (0...Self.maximumCropGrid).contains(cropGrid) else { throw .invalidInput("cropGrid must be in 0...\(Self.maximumCropGrid)") }
        guard resolution >= 0 else { throw .invalidInput("resolution must be positive") }
        guard cropGrid == 0 || resolution == 0 else { throw .invalidInput("resolution sets the dense cells' grid; crops are seen at the model's size") }
    }
}

public enum SelectionError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidInput(String)
    case invalidFile(path: String, reason: String)
    public var description: String {
        switch self {
        case let .invalidInput(reason): reason
        case let .invalidFile(path, reason): "\(path): \(reason)"
        }
    }
}

/// What one step reports (validation fields on the steps that validate).
public struct SelectorTrainingStep: Sendable, Equatable {
    public let step: Int
    public let loss: Double
    public let validationLoss: Double?
    /// Fraction of held-out examples whose highest cell is one the target weighs most.
    public let validationTopCell: Double?
    public let temperature: Float
}

public struct SelectorTrainingOutcome: Sendable {
    /// The state with the lowest validation loss seen (the initial head counts: training never makes it worse).
    public let best: SelectionHead
    public let bestStep: Int
    public let bestValidationLoss: Double
    public let initialValidationLoss: Double
    public let stepsRun: Int
    public let cancelled: Bool
}

/// Adam over the head's parameters (A and λ as one flat vector), with held-out validation and the
/// best state kept.
public struct SelectorTrainer: Sendable {
    public let configuration: SelectorTrainingConfiguration
    public init(configuration: SelectorTrainingConfiguration) { self.configuration = configuration }

    public func train(from start: SelectionHead, training: [SelectionExample], validation: [SelectionExample],
                      onStep: (SelectorTrainingStep) -> Void = { _ in },
                      compute: ComputeContext = ComputeContext()) throws(SelectionError) -> SelectorTrainingOutcome {
        try configuration.validate()
        guard !training.isEmpty else { throw .invalidInput("no training examples") }
        guard !validation.isEmpty else { throw .invalidInput("no validation examples") }
        var head = start
        var adam = Adam(count: head.bilinear.count + 1)
        var batches = BatchOrder(count: training.count, size: configuration.batchSize, seed: configuration.seed)
        let initial = SelectionObjective.evaluate(head, on: validation).loss
        var best = (head: head, step: 0, loss: initial)
        var step = 0
        while step < configuration.steps {
            if compute.isCancelled { break }
            let batch = batches.next().map { training[$0] }
            let evaluation = SelectionObjective.evaluate(head, on: batch)
            var parameters = head.bilinear + [head.logScale]
            adam.update(&parameters, gradient: evaluation.bilinearGradient + [evaluation.logScaleGradient], rate: configuration.learningRate)
            head.logScale = parameters.removeLast()
            head.bilinear = parameters
            step += 1
            var report = SelectorTrainingStep(step: step, loss: evaluation.loss, validationLoss: nil, validationTopCell: nil,
                                              temperature: exp(-head.logScale))
            if step % configuration.validateEvery == 0 || step == configuration.steps {
                let held = Self.validationFigures(head, validation)
                if held.loss < best.loss { best = (head, step, held.loss) }
                report = SelectorTrainingStep(step: step, loss: evaluation.loss, validationLoss: held.loss,
                                              validationTopCell: held.topCell, temperature: report.temperature)
            }
            onStep(report)
        }
        return SelectorTrainingOutcome(best: best.head, bestStep: best.step, bestValidationLoss: best.loss,
                                       initialValidationLoss: initial, stepsRun: step, cancelled: step < configuration.steps)
    }

    static func validationFigures(_ head: SelectionHead, _ examples: [SelectionExample]) -> (loss: Double, topCell: Double) {
        let loss = SelectionObjective.evaluate(head, on: examples).loss
        let hits = examples.filter { example in
            let map = head.map(cells: example.cells, text: example.text)
            let top = map.indices.max { map[$0] < map[$1] }!
            return example.target[top] >= example.target.max()!
        }.count
        return (loss, Double(hits) / Double(examples.count))
    }
}

/// Mini-batches: each epoch a seeded shuffle of the examples, cut into batches (0: the full set).
struct BatchOrder: Sendable {
    private let count: Int, size: Int
    private var generator: SplitMix64
    private var order: [Int] = [], position = 0

    init(count: Int, size: Int, seed: UInt64) {
        (self.count, self.size, generator) = (count, size == 0 ? count : min(size, count), SplitMix64(seed: seed))
    }

    mutating func next() -> [Int] {
        if position + size > order.count {
            order = Array(0..<count).shuffled(using: &generator)
            position = 0
        }
        defer { position += size }
        return Array(order[position..<position + size])
    }
}
