import Foundation
import VLMTensor

/// Learning-rate schedule: linear warm-up from lr/warmup to lr, then cosine decay to 0 at `steps`
/// (or constant).
struct LearningRateSchedule: Sendable {
    let base: Float
    let steps: Int
    let warmup: Int
    let cosine: Bool

    func rate(at step: Int) -> Float {  // step counts from 0
        if step < warmup { return base * Float(step + 1) / Float(warmup) }
        guard cosine, steps > warmup else { return base }
        let progress = Double(step - warmup) / Double(steps - warmup)
        return base * Float(0.5 * (1 + cos(.pi * progress)))
    }
}

/// First-order optimisers over one flat parameter vector.
struct ParameterOptimiser: Sendable {
    let kind: PromptLearningConfiguration.Optimiser
    private var momentumBuffer: [Float]
    private var adam: Adam?
    static let momentum: Float = 0.9

    init(kind: PromptLearningConfiguration.Optimiser, count: Int) {
        self.kind = kind
        momentumBuffer = kind == .sgd ? [Float](repeating: 0, count: count) : []
        adam = kind == .adam ? Adam(count: count) : nil
    }

    /// One update of `parameters` with `gradient` at learning rate `rate`.
    mutating func update(_ parameters: inout [Float], gradient: [Float], rate: Float) {
        switch kind {
        case .sgd:  // PyTorch's SGD: b = μ·b + g; p −= lr·b
            for i in parameters.indices {
                momentumBuffer[i] = Self.momentum * momentumBuffer[i] + gradient[i]
                parameters[i] -= rate * momentumBuffer[i]
            }
        case .adam:
            adam!.update(&parameters, gradient: gradient, rate: rate)
        }
    }
}
