import VLMCLIP
import VLMTensor

/// A token the context was read as: its id, its text, and how far the vector was from it.
public struct NearestToken: Sendable, Codable, Equatable {
    public var id: Int32
    public var text: String
    /// Euclidean distance ‖v − e‖ between the context vector and the token embedding.
    public var distance: Float
    /// Cosine similarity between them.
    public var cosine: Float
}

/// The tokens prompts are projected onto (PEZ) and read back through (soft prompts).
///
/// Candidates are restricted to *whole words that round-trip*: tokens whose decoded text is one
/// lowercase ASCII word followed by the end-of-word marker (`</w>`, decoded as a space), and which
/// `CLIPTokenizer.encode` maps back to exactly that one id. Any sequence of such words, joined by
/// spaces and followed by the class name, therefore re-tokenizes to the same ids (the pre-tokenizer
/// splits at spaces, and each word is its own single token), so a projected prompt is exact text.
/// Sub-word pieces, punctuation, digits and non-ASCII tokens are excluded.
struct TokenVocabulary: Sendable {
    let ids: [Int32]
    let words: [String]
    let width: Int
    /// [count, width] raw token embeddings and their unit-length versions.
    let embeddings: [Float]
    private let unitEmbeddings: [Float]
    let squaredNorms: [Float]

    var count: Int { ids.count }

    init(tokenizer: CLIPTokenizer, tokenEmbedding: [Float], width: Int) {
        var ids: [Int32] = [], words: [String] = []
        let vocabulary = min(tokenizer.vocabularySize, tokenEmbedding.count / width)
        for id in 0..<Int32(vocabulary) where id != tokenizer.startOfText && id != tokenizer.endOfText {
            let text = tokenizer.decode([id])
            guard text.hasSuffix(" ") else { continue }
            let word = String(text.dropLast())
            guard !word.isEmpty, word.utf8.allSatisfy({ $0 >= 97 && $0 <= 122 }) else { continue }  // a-z
            guard tokenizer.encode(word) == [id] else { continue }
            ids.append(id)
            words.append(word)
        }
        var embeddings = [Float](), unit = [Float](), norms = [Float]()
        embeddings.reserveCapacity(ids.count * width)
        for id in ids {
            let row = Array(tokenEmbedding[Int(id) * width..<(Int(id) + 1) * width])
            embeddings += row
            unit += l2Normalized(row)
            norms.append(dot(row, row))
        }
        (self.ids, self.words, self.width) = (ids, words, width)
        (self.embeddings, unitEmbeddings, squaredNorms) = (embeddings, unit, norms)
    }

    /// Candidate index of the nearest token for each of `vectors` ([n, width]).
    func nearest(_ vectors: [Float], metric: PromptLearningConfiguration.ProjectionMetric) -> [Int] {
        let n = vectors.count / width
        // scores[v, t] = e_t · x_v (cosine: unit e_t; the query norm does not change the argmax)
        var scores = [Float](repeating: 0, count: n * count)
        let table = metric == .cosine ? unitEmbeddings : embeddings
        vectors.withUnsafeBufferPointer { x in
            table.withUnsafeBufferPointer { e in
                scores.withUnsafeMutableBufferPointer { s in
                    MatrixMultiply.gemm(transposeB: true, m: n, n: count, k: width, a: x.baseAddress!, lda: width,
                                        b: e.baseAddress!, ldb: width, c: s.baseAddress!, ldc: count)
                }
            }
        }
        return (0..<n).map { v in
            var best = 0, bestScore = -Float.infinity
            for t in 0..<count {
                // Euclidean: argmin ‖x − e‖² = argmax (2 x·e − ‖e‖²)
                let score = metric == .cosine ? scores[v * count + t] : 2 * scores[v * count + t] - squaredNorms[t]
                if score > bestScore { (best, bestScore) = (t, score) }
            }
            return best
        }
    }

    /// The embeddings of the nearest tokens, in place of `context`'s vectors (PEZ's projection).
    func project(_ context: ContextVectors, metric: PromptLearningConfiguration.ProjectionMetric) -> (ContextVectors, [Int]) {
        let indices = nearest(context.values, metric: metric)
        var projected = context
        projected.values = indices.flatMap { Array(embeddings[$0 * width..<($0 + 1) * width]) }
        return (projected, indices)
    }

    /// Nearest tokens with distances, [group][position].
    func read(_ context: ContextVectors, metric: PromptLearningConfiguration.ProjectionMetric) -> [[NearestToken]] {
        let indices = nearest(context.values, metric: metric)
        return (0..<context.groups).map { g in
            (0..<context.count).map { m in
                let t = indices[g * context.count + m]
                let vector = Array(context.vector(group: g, position: m))
                let token = Array(embeddings[t * width..<(t + 1) * width])
                let difference = zip(vector, token).map { $0 - $1 }
                return NearestToken(id: ids[t], text: words[t], distance: dot(difference, difference).squareRoot(),
                                    cosine: dot(l2Normalized(vector), l2Normalized(token)))
            }
        }
    }

    /// Mean squared norm of the candidate embeddings: the scale that makes the distance penalty
    /// independent of how large a model's token embeddings are.
    var meanSquaredNorm: Float { squaredNorms.reduce(0, +) / Float(max(count, 1)) }

    /// μ · mean_m ‖ctx_m − e_m‖² / mean_t ‖e_t‖², e_m the nearest (Euclidean) candidate token, and its
    /// gradient (2μ / (n · mean ‖e‖²)) · (ctx_m − e_m). Scale-free, so μ ≈ 1 is a moderate pull for any model.
    func distancePenalty(_ context: ContextVectors, weight: Float) -> (penalty: Float, gradient: [Float]) {
        let indices = nearest(context.values, metric: .euclidean)
        let n = Float(indices.count) * meanSquaredNorm
        var penalty: Float = 0
        var gradient = [Float](repeating: 0, count: context.values.count)
        for (v, t) in indices.enumerated() {
            for d in 0..<width {
                let diff = context.values[v * width + d] - embeddings[t * width + d]
                penalty += weight * diff * diff / n
                gradient[v * width + d] = 2 * weight * diff / n
            }
        }
        return (penalty, gradient)
    }
}

extension Array where Element == NearestToken {
    /// The words of one group's tokens, space-separated.
    var text: String { map(\.text).joined(separator: " ") }
}
