import Foundation
import VLMTensor

/// One training example: the L2-normalised features of an image's cells, the L2-normalised text
/// embedding of the query, and the target distribution over the cells (sums to 1).
public struct SelectionExample: Sendable, Equatable {
    public let cells: [[Float]]
    public let text: [Float]
    public let target: [Float]

    public init(cells: [[Float]], text: [Float], target: [Float]) {
        precondition(cells.count == target.count, "one target value per cell")
        (self.cells, self.text, self.target) = (cells, text, target)
    }
}

/// The mean cross-entropy H(q, p) = −Σᵢ qᵢ log pᵢ of the head's maps p against the targets q, and its
/// gradient. Against a box's cells that is the box's log-likelihood; against a target map it differs
/// from KL(q‖p) by q's entropy, a constant, so both share this gradient.
public enum SelectionObjective {
    public struct Evaluation: Sendable {
        public let loss: Double
        /// ∂loss/∂A, row-major D×D.
        public let bilinearGradient: [Float]
        public let logScaleGradient: Float
    }

    /// Backward pass, per example (mean over the batch):
    ///   ∂L/∂sᵢ = pᵢ − qᵢ;  ∂L/∂λ = Σᵢ (pᵢ − qᵢ)·sᵢ;  ∂L/∂u = exp(λ)·Σᵢ (pᵢ − qᵢ)·fᵢ;  ∂L/∂A = (∂L/∂u)·tᵀ.
    /// The outer products of all examples are summed by one matrix product, Gᵀ·T.
    public static func evaluate(_ head: SelectionHead, on examples: [SelectionExample]) -> Evaluation {
        precondition(!examples.isEmpty)
        let d = head.width, n = examples.count
        let scale = exp(head.logScale)
        var loss = 0.0, logScaleGradient = 0.0
        var queryGradients = [Float](repeating: 0, count: n * d)  // G: one ∂L/∂u row per example
        for (row, example) in examples.enumerated() {
            let s = head.logits(cells: example.cells, query: head.query(example.text))
            let logNormaliser = logSumExp(s)
            for (i, f) in example.cells.enumerated() {
                let q = Double(example.target[i])
                let p = exp(Double(s[i]) - logNormaliser)
                if q > 0 { loss -= q * (Double(s[i]) - logNormaliser) }
                let ds = p - q
                logScaleGradient += ds * Double(s[i])
                let weight = Float(ds) * scale
                for k in 0..<d { queryGradients[row * d + k] += weight * f[k] }
            }
        }
        let texts = examples.flatMap(\.text)
        var gradient = [Float](repeating: 0, count: d * d)
        queryGradients.withUnsafeBufferPointer { g in
            texts.withUnsafeBufferPointer { t in
                gradient.withUnsafeMutableBufferPointer { out in
                    MatrixMultiply.gemm(transposeA: true, m: d, n: d, k: n, alpha: 1 / Float(n), a: g.baseAddress!, lda: d,
                                        b: t.baseAddress!, ldb: d, c: out.baseAddress!, ldc: d)
                }
            }
        }
        return Evaluation(loss: loss / Double(n), bilinearGradient: gradient, logScaleGradient: Float(logScaleGradient / Double(n)))
    }
}
