// Choosing the next token from logits.
import Foundation
import VLMTensor

public struct SamplingParameters: Sendable, Equatable {
    /// 0 (or less) means greedy: always the highest logit.
    public var temperature: Float = 0
    /// Keep only the k most likely tokens (0 = all).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability reaches p (1 = all).
    public var topP: Float = 1
    /// Drop tokens less likely than minP times the most likely one (0 = none).
    public var minP: Float = 0
    /// > 1 discourages tokens among the last `repetitionWindow` ones (CTRL-style: divide positive logits, multiply negative).
    public var repetitionPenalty: Float = 1
    public var repetitionWindow: Int = 64
    public var seed: UInt64 = 0
    public var maxTokens: Int = 128
    /// Generation stops before the first occurrence of any of these in the output text.
    public var stopStrings: [String] = []
    /// Report each chosen token's log-probability (under the unmodified model distribution).
    public var logProbabilities: Bool = false

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0, repetitionPenalty: Float = 1,
                repetitionWindow: Int = 64, seed: UInt64 = 0, maxTokens: Int = 128, stopStrings: [String] = [],
                logProbabilities: Bool = false) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.minP = minP
        self.repetitionPenalty = repetitionPenalty; self.repetitionWindow = repetitionWindow; self.seed = seed
        self.maxTokens = maxTokens; self.stopStrings = stopStrings; self.logProbabilities = logProbabilities
    }

    public static let greedy = SamplingParameters()
}

/// The sampler state of one generation (the random stream).
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var random: Xoshiro256StarStar

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        random = Xoshiro256StarStar(seed: parameters.seed)
    }

    /// Picks a token. Filters apply in llama.cpp's default order: penalty, top-k, top-p, min-p, temperature.
    public mutating func sample(_ logits: [Float], history: [Int32]) -> Int32 {
        let p = parameters
        var adjusted = logits
        if p.repetitionPenalty != 1 {
            for t in Set(history.suffix(p.repetitionWindow)) where t >= 0 && Int(t) < adjusted.count {
                let l = adjusted[Int(t)]
                adjusted[Int(t)] = l > 0 ? l / p.repetitionPenalty : l * p.repetitionPenalty
            }
        }
        if p.temperature <= 0 { return Int32(Sampler.argmax(adjusted)) }

        // Candidates sorted by logit, then trimmed.
        var candidates = adjusted.indices.sorted { adjusted[$0] != adjusted[$1] ? adjusted[$0] > adjusted[$1] : $0 < $1 }
        if p.topK > 0 { candidates = Array(candidates.prefix(p.topK)) }
        var probabilities = Sampler.softmax(candidates.map { adjusted[$0] })
        if p.topP < 1 {
            var cumulative: Float = 0, keep = candidates.count
            for (i, q) in probabilities.enumerated() {
                cumulative += q
                if cumulative >= p.topP { keep = i + 1; break }
            }
            candidates = Array(candidates.prefix(keep))
        }
        if p.minP > 0 {
            let threshold = probabilities[0] * p.minP
            // `candidates` is still a prefix of the list `probabilities` was computed for.
            candidates = Array(candidates.prefix(probabilities.prefix(candidates.count).prefix(while: { $0 >= threshold }).count))
        }
        probabilities = Sampler.softmax(candidates.map { adjusted[$0] / p.temperature })
        let u = Float(random.nextUnit())
        var cumulative: Float = 0
        for (i, q) in probabilities.enumerated() {
            cumulative += q
            if u < cumulative { return Int32(candidates[i]) }
        }
        return Int32(candidates[candidates.count - 1])
    }

    static func argmax(_ x: [Float]) -> Int {
        var best = 0
        for i in 1..<x.count where x[i] > x[best] { best = i }
        return best
    }

    /// llama.cpp's sampler softmax: Float exponentials divided by their Float sum. Not VLMTensor's
    /// `softmaxInPlace`, which multiplies by the inverse sum: the last bit can differ, and a seeded draw
    /// compares a cumulative sum against a threshold, so this keeps llama.cpp's arithmetic.
    static func softmax(_ x: [Float]) -> [Float] {
        guard let m = x.max() else { return [] }
        let e = x.map { expf($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    /// log p(token) under softmax(logits), computed in Double.
    public static func logProbability(of token: Int32, logits: [Float]) -> Double {
        Double(logits[Int(token)]) - logSumExp(logits)
    }
}
