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

        let candidates = Sampler.candidates(adjusted, topK: p.topK, topP: p.topP, minP: p.minP)
        let probabilities = Sampler.softmax(candidates.map { adjusted[$0] / p.temperature })
        let u = Float(random.nextUnit())
        var cumulative: Float = 0
        for (i, q) in probabilities.enumerated() {
            cumulative += q
            if u < cumulative { return Int32(candidates[i]) }
        }
        return Int32(candidates[candidates.count - 1])
    }

    /// The tokens that survive top-k, then top-p, then min-p (measured at temperature 1), most likely
    /// first and ties by lower id, as llama.cpp's chain leaves them.
    ///
    /// Sorting a 49k-entry vocabulary for every sampled token cost more than the decode step itself, so
    /// only the head of the distribution is sorted: the tokens within `spread` logits of the best. The
    /// head widens until the filters are decided inside it; every token outside it is less likely than
    /// every token in it, so the result is the one a full sort would give.
    static func candidates(_ logits: [Float], topK: Int, topP: Float, minP: Float) -> [Int] {
        let n = logits.count
        guard let best = logits.max() else { return [] }
        let k = topK > 0 ? min(topK, n) : n
        // top-p measures mass against the whole distribution (after top-k): sum of exp(x - best).
        let wholeMass = k == n && topP < 1 ? logits.reduce(0.0) { $0 + Double(expf($1 - best)) } : 0
        // With no filter every token is a candidate: one full sort. min-p keeps p >= minP * p_best, i.e.
        // x >= best + ln(minP): the first head already holds them all.
        var spread: Float = k == n && topP >= 1 && minP <= 0 ? .infinity : max(16, minP > 0 ? -logf(minP) : 0)
        while true {
            let threshold = spread.isFinite ? best - spread : -Float.infinity
            let head = sortedIndices(logits, atLeast: threshold)
            let whole = head.count == n || !spread.isFinite
            if let kept = survivors(head, of: logits, best: best, k: k, topP: topP, minP: minP,
                                    wholeMass: wholeMass, headIsWhole: whole) {
                return kept
            }
            spread = spread < 1024 ? spread * 4 : .infinity
        }
    }

    /// The filters applied to `head` (the most likely tokens, sorted); nil when they cannot be decided
    /// without seeing more of the distribution.
    private static func survivors(_ head: [Int], of logits: [Float], best: Float, k: Int, topP: Float, minP: Float,
                                  wholeMass: Double, headIsWhole: Bool) -> [Int]? {
        var kept = head
        if k < logits.count {
            guard head.count >= k || headIsWhole else { return nil }
            kept = Array(head.prefix(k))
        }
        let keptIsWholePool = k < logits.count || headIsWhole
        if topP < 1 {
            let mass = k < logits.count ? kept.reduce(0.0) { $0 + Double(expf(logits[$1] - best)) } : wholeMass
            var cumulative = 0.0  // Double: over thousands of tail tokens a Float sum drifts by whole tokens
            var cut: Int? = nil
            for (i, token) in kept.enumerated() {
                cumulative += Double(expf(logits[token] - best))
                if cumulative >= Double(topP) * mass { cut = i + 1; break }
            }
            if let cut { kept = Array(kept.prefix(cut)) } else if !keptIsWholePool { return nil }
        }
        if minP > 0 { kept = Array(kept.prefix { expf(logits[$0] - best) >= minP }) }
        return kept
    }

    /// Indices of the logits >= threshold, largest first, ties by lower index.
    private static func sortedIndices(_ logits: [Float], atLeast threshold: Float) -> [Int] {
        var entries: [(logit: Float, index: Int)] = []
        for (i, x) in logits.enumerated() where x >= threshold { entries.append((x, i)) }
        entries.sort { $0.logit != $1.logit ? $0.logit > $1.logit : $0.index < $1.index }
        return entries.map(\.index)
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
