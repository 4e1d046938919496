import VLMCLIP
import VLMTensor
import VLMWire

/// A token the context was read as: its id, its text, and how far the vector was from it (the
/// protocol's value type, reported as computed).
public typealias NearestToken = NearestTokenInfo

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
    /// The model's whole token table [vocab, width] (shared, not copied: the products below run
    /// over every row and only candidates are considered, which costs less memory than a copy).
    private let table: [Float]
    /// ‖e‖² per vocabulary row.
    private let tableSquaredNorms: [Float]

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
        (self.ids, self.words, self.width, table) = (ids, words, width, tokenEmbedding)
        tableSquaredNorms = (0..<tokenEmbedding.count / width).map { row in
            var sum: Float = 0
            for d in 0..<width { sum += tokenEmbedding[row * width + d] * tokenEmbedding[row * width + d] }
            return sum
        }
    }

    /// Embedding of candidate `t`.
    func embedding(_ t: Int) -> ArraySlice<Float> {
        let row = Int(ids[t])
        return table[row * width..<(row + 1) * width]
    }

    /// Mean squared norm of the candidate embeddings: the scale that makes the distance penalty
    /// independent of how large a model's token embeddings are.
    var meanSquaredNorm: Float { ids.reduce(0) { $0 + tableSquaredNorms[Int($1)] } / Float(max(count, 1)) }

    /// Candidate index of the nearest token for each of `vectors` ([n, width]):
    /// cosine: argmax e·x / ‖e‖ (the query norm does not change the argmax);
    /// Euclidean: argmin ‖x − e‖² = argmax 2 e·x − ‖e‖².
    func nearest(_ vectors: [Float], metric: PromptLearningConfiguration.ProjectionMetric) -> [Int] {
        let n = vectors.count / width
        let rows = tableSquaredNorms.count
        var products = [Float](repeating: 0, count: n * rows)  // products[v, r] = x_v · e_r
        vectors.withUnsafeBufferPointer { x in
            table.withUnsafeBufferPointer { e in
                products.withUnsafeMutableBufferPointer { p in
                    MatrixMultiply.gemm(transposeB: true, m: n, n: rows, k: width, a: x.baseAddress!, lda: width,
                                        b: e.baseAddress!, ldb: width, c: p.baseAddress!, ldc: rows)
                }
            }
        }
        return (0..<n).map { v in
            var best = 0, bestScore = -Float.infinity
            for (t, id) in ids.enumerated() {
                let (product, squaredNorm) = (products[v * rows + Int(id)], tableSquaredNorms[Int(id)])
                let score = metric == .cosine ? product / max(squaredNorm.squareRoot(), 1e-12) : 2 * product - squaredNorm
                if score > bestScore { (best, bestScore) = (t, score) }
            }
            return best
        }
    }

    /// The embeddings of the nearest tokens, in place of `context`'s vectors (PEZ's projection).
    func project(_ context: ContextVectors, metric: PromptLearningConfiguration.ProjectionMetric) -> (ContextVectors, [Int]) {
        let indices = nearest(context.values, metric: metric)
        var projected = context
        projected.values = indices.flatMap { Array(embedding($0)) }
        return (projected, indices)
    }

    /// Nearest tokens with distances, [group][position].
    func read(_ context: ContextVectors, metric: PromptLearningConfiguration.ProjectionMetric) -> [[NearestToken]] {
        let indices = nearest(context.values, metric: metric)
        return (0..<context.groups).map { g in
            (0..<context.count).map { m in
                let t = indices[g * context.count + m]
                let vector = Array(context.vector(group: g, position: m))
                let token = Array(embedding(t))
                let difference = zip(vector, token).map { $0 - $1 }
                return NearestToken(id: ids[t], text: words[t], distance: dot(difference, difference).squareRoot(),
                                    cosine: dot(l2Normalized(vector), l2Normalized(token)))
            }
        }
    }

    /// μ · mean_m ‖ctx_m − e_m‖² / mean_t ‖e_t‖², e_m the nearest (Euclidean) candidate token, and its
    /// gradient (2μ / (n · mean ‖e‖²)) · (ctx_m − e_m). Scale-free, so μ ≈ 1 is a moderate pull for any model.
    func distancePenalty(_ context: ContextVectors, weight: Float) -> (penalty: Float, gradient: [Float]) {
        let indices = nearest(context.values, metric: .euclidean)
        let n = Float(indices.count) * meanSquaredNorm  // (a full pass over the candidates: fine once per step)
        var penalty: Float = 0
        var gradient = [Float](repeating: 0, count: context.values.count)
        for (v, t) in indices.enumerated() {
            let token = embedding(t)
            for d in 0..<width {
                let diff = context.values[v * width + d] - token[token.startIndex + d]
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
