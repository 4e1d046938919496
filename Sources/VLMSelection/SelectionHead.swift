// VLMSelection: a learned selection head over frozen CLIP features. Where the plain attribution map
// scores each cell by its cosine with the query's text embedding, the head first maps the text
// embedding through a learned matrix (a bilinear form between cell and text), so it can learn which
// directions of the cell features answer which queries:
//
//     u = A·t,   sᵢ = exp(λ) · ⟨fᵢ, u⟩,   pᵢ = softmax(s)ᵢ
//
// with fᵢ the L2-normalised dense feature of cell i, t the L2-normalised text embedding, A a D×D
// matrix started at the identity and λ a learned log-scale (inverse temperature) started at CLIP's
// logit scale: before training the head's map *is* the plain similarity map.
//
// Reading order: SelectionHead (this file) → SelectionObjective (loss and its hand-written
// gradient) → SelectionTargets (a box as a distribution over cells) → SelectorTrainer (Adam,
// validation, best state) → SavedSelector (safetensors + metadata) → SelectionMetrics.
import Foundation
import VLMTensor

public struct SelectionHead: Sendable, Equatable {
    /// D: the CLIP embedding width the head was made for.
    public let width: Int
    /// A, row-major D×D.
    public var bilinear: [Float]
    /// λ: the map's logits are exp(λ)·⟨fᵢ, A·t⟩.
    public var logScale: Float

    public init(width: Int, bilinear: [Float], logScale: Float) {
        precondition(width > 0 && bilinear.count == width * width, "the bilinear form is D×D")
        (self.width, self.bilinear, self.logScale) = (width, bilinear, logScale)
    }

    /// The head whose map equals the plain similarity map softmaxed at CLIP's logit scale.
    public static func identity(width: Int, logitScale: Float) -> SelectionHead {
        var a = [Float](repeating: 0, count: width * width)
        for i in 0..<width { a[i * width + i] = 1 }
        return SelectionHead(width: width, bilinear: a, logScale: log(logitScale))
    }

    /// u = A·t: the text embedding turned into the direction cells are scored along.
    public func query(_ text: [Float]) -> [Float] {
        precondition(text.count == width)
        var u = [Float](repeating: 0, count: width)
        bilinear.withUnsafeBufferPointer { a in
            text.withUnsafeBufferPointer { t in
                u.withUnsafeMutableBufferPointer { u in
                    MatrixMultiply.gemv(m: width, n: width, a: a.baseAddress!, lda: width, x: t.baseAddress!, y: u.baseAddress!)
                }
            }
        }
        return u
    }

    /// The logits sᵢ of each cell (cells L2-normalised, `query` from `query(_:)`).
    public func logits(cells: [[Float]], query: [Float]) -> [Float] {
        let scale = exp(logScale)
        return cells.map { scale * dot($0, query) }
    }

    /// The head's map over the cells for a text: finite, non-negative, summing to 1.
    public func map(cells: [[Float]], text: [Float]) -> [Float] {
        softmaxInDouble(logits(cells: cells, query: query(text))).map { Float($0) }
    }
}
