import Foundation

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
    private var first: [Float]  // momentum buffer / Adam's m
    private var second: [Float]  // Adam's v
    private var step = 0
    static let momentum: Float = 0.9, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8

    init(kind: PromptLearningConfiguration.Optimiser, count: Int) {
        self.kind = kind
        first = [Float](repeating: 0, count: count)
        second = kind == .adam ? [Float](repeating: 0, count: count) : []
    }

    /// One update of `parameters` with `gradient` at learning rate `rate`.
    mutating func update(_ parameters: inout [Float], gradient: [Float], rate: Float) {
        step += 1
        switch kind {
        case .sgd:  // PyTorch's SGD: b = μ·b + g; p −= lr·b
            for i in parameters.indices {
                first[i] = Self.momentum * first[i] + gradient[i]
                parameters[i] -= rate * first[i]
            }
        case .adam:
            let correction1 = 1 - pow(Self.beta1, Float(step)), correction2 = 1 - pow(Self.beta2, Float(step))
            for i in parameters.indices {
                first[i] = Self.beta1 * first[i] + (1 - Self.beta1) * gradient[i]
                second[i] = Self.beta2 * second[i] + (1 - Self.beta2) * gradient[i] * gradient[i]
                let mHat = first[i] / correction1, vHat = second[i] / correction2
                parameters[i] -= rate * mHat / (vHat.squareRoot() + Self.epsilon)
            }
        }
    }
}
