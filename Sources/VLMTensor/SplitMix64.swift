import Foundation

/// SplitMix64 (Steele, Lea & Flood 2014): the deterministic generator behind every random choice in
/// prompt learning (few-shot splits, random context initialisation, LM sampling seeds). The same
/// seed gives the same sequence on every platform and Swift version, unlike SystemRandomNumberGenerator.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) from the top 53 bits.
    public mutating func nextUniform() -> Double { Double(next() >> 11) / Double(1 << 53) }

    /// Standard normal by Box–Muller (one value per call; the partner value is discarded for simplicity).
    public mutating func nextGaussian() -> Double {
        let u1 = max(nextUniform(), .leastNonzeroMagnitude)
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * nextUniform())
    }

    /// Uniform integer in 0..<bound without modulo bias (Lemire's method is overkill here: rejection).
    public mutating func nextIndex(below bound: Int) -> Int {
        precondition(bound > 0)
        let limit = UInt64.max - UInt64.max % UInt64(bound)
        while true {
            let value = next()
            if value < limit { return Int(value % UInt64(bound)) }
        }
    }
}
