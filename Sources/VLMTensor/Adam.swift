import Foundation

/// Adam over one flat parameter vector, as PyTorch's `torch.optim.Adam` updates it (β₁ 0.9, β₂ 0.999,
/// ε 1e-8, bias-corrected moments): the one update prompt learning and selector training share.
public struct Adam: Sendable {
    public static let beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8
    private var first: [Float], second: [Float], step = 0

    public init(count: Int) { (first, second) = ([Float](repeating: 0, count: count), [Float](repeating: 0, count: count)) }

    /// One update of `parameters` with `gradient` at learning rate `rate`.
    public mutating func update(_ parameters: inout [Float], gradient: [Float], rate: Float) {
        step += 1
        let correction1 = 1 - pow(Self.beta1, Float(step)), correction2 = 1 - pow(Self.beta2, Float(step))
        for i in parameters.indices {
            first[i] = Self.beta1 * first[i] + (1 - Self.beta1) * gradient[i]
            second[i] = Self.beta2 * second[i] + (1 - Self.beta2) * gradient[i] * gradient[i]
            let mHat = first[i] / correction1, vHat = second[i] / correction2
            parameters[i] -= rate * mHat / (vHat.squareRoot() + Self.epsilon)
        }
    }
}
