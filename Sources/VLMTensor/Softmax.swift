import Foundation

// Softmax exists once per numerical convention:
// - `softmaxInPlace` (Activations.swift): Float rows in place, multiplied by the inverse sum; the
//   tensor one (attention, classification probabilities), PyTorch's arithmetic.
// - `LayerMath.softmax` (VLMLanguage): ggml's, in 16-lane chunks summed in Double, for llama.cpp parity
//   of attention.
// - `Sampler.softmax` (VLMLanguage): llama.cpp's sampler's, which divides by the Float sum, so
//   seeded sampling draws what llama.cpp draws.
// - Here, in Double, for small vectors whose values are reported or differentiated: log-probabilities
//   through `logSumExp`, probabilities through `softmaxInDouble`.

/// log Σ exp(xᵢ), in Double with the maximum taken out first (so nothing overflows); log p(xᵢ) under
/// softmax is xᵢ − logSumExp(x).
@inlinable
public func logSumExp<Values: Collection>(_ x: Values) -> Double where Values.Element: BinaryFloatingPoint {
    let maximum = x.max().map { Double($0) } ?? 0
    return log(x.reduce(0.0) { $0 + exp(Double($1) - maximum) }) + maximum
}

/// softmax(x / temperature) in Double: exp((xᵢ − max) / T) / Σ. The difference and division are
/// Float (as the scores are); the exponentials and their sum Double. Non-finite results (a
/// non-finite score or temperature) are the caller's to handle.
public func softmaxInDouble(_ x: [Float], temperature: Float = 1) -> [Double] {
    guard let maximum = x.max() else { return [] }
    let e = x.map { exp(Double(($0 - maximum) / temperature)) }
    let total = e.reduce(0, +)
    return e.map { $0 / total }
}
