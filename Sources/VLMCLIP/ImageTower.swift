import VLMTensor

/// Dense per-position image features, for attributing a text query to image regions.
public struct DenseImageFeatures: Sendable, Equatable {
    /// Feature grid rows and columns (e.g. 7×7 for RN50 and ViT-B/32 at 224 px).
    public let gridHeight: Int
    public let gridWidth: Int
    /// One [gridHeight · gridWidth][embedDim] map per image, row-major cells, not normalised.
    public let features: [[[Float]]]
}

/// An image encoder: NCHW pixel batches in, embedding rows out.
protocol ImageTower: Sendable {
    /// Unnormalised embeddings, [count, embedDim] row-major.
    func encode(_ pixels: [Float], count: Int, scratch: ScratchBuffer, compute: ComputeContext) throws -> [Float]
    /// Per-cell features, [count, gridHeight · gridWidth, embedDim] row-major.
    func encodeDense(_ pixels: [Float], count: Int, scratch: ScratchBuffer, compute: ComputeContext) throws
        -> (values: [Float], gridHeight: Int, gridWidth: Int)
    /// The embeddings and, with `dense`, the per-cell features too, from one pass of the trunk.
    func encodeWithDense(_ pixels: [Float], count: Int, dense: Bool, scratch: ScratchBuffer, compute: ComputeContext) throws
        -> (pooled: [Float], dense: (values: [Float], gridHeight: Int, gridWidth: Int)?)
}

/// Swaps the two inner axes of [batch, rows, cols] (NCHW feature maps ↔ [batch, positions, channels]).
func transposeInner(_ x: [Float], batch: Int, rows: Int, cols: Int) -> [Float] {
    var out = [Float](repeating: 0, count: x.count)
    x.withUnsafeBufferPointer { x in
        out.withUnsafeMutableBufferPointer { out in
            for b in 0..<batch {
                let src = x.baseAddress! + b * rows * cols
                let dst = out.baseAddress! + b * rows * cols
                for r in 0..<rows { for c in 0..<cols { dst[c * rows + r] = src[r * cols + c] } }
            }
        }
    }
    return out
}
