/// A fully connected layer in PyTorch's layout: y = x · Wᵀ + b with W stored [out, in].
public struct Linear: Sendable {
    public let inFeatures: Int
    public let outFeatures: Int
    /// [outFeatures, inFeatures], row-major.
    public let weight: [Float]
    /// [outFeatures], or nil for a layer without bias.
    public let bias: [Float]?

    public init(weight: Tensor, bias: Tensor?) {
        precondition(weight.shape.count == 2, "Linear weight must be 2-D, got \(weight.shape)")
        outFeatures = weight.shape[0]
        inFeatures = weight.shape[1]
        precondition(bias == nil || bias!.shape == [outFeatures], "Linear bias shape \(bias!.shape)")
        self.weight = weight.storage
        self.bias = bias?.storage
    }

    /// Builds the layer from a [in, out] projection matrix used as `x @ P` (open_clip's `proj`,
    /// `text_projection`): the transpose is taken once here so every call is the same product.
    public init(projection: Tensor) {
        precondition(projection.shape.count == 2, "projection must be 2-D, got \(projection.shape)")
        let (rows, cols) = (projection.shape[0], projection.shape[1])
        var transposed = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows { for c in 0..<cols { transposed[c * rows + r] = projection.storage[r * cols + c] } }
        self.init(weight: Tensor(shape: [cols, rows], storage: transposed), bias: nil)
    }

    /// Applies the layer to `rows` input rows (row stride `inFeatures`), writing `rows` output rows
    /// (row stride `outFeatures`).
    public func apply(_ input: UnsafePointer<Float>, rows: Int, into output: UnsafeMutablePointer<Float>) {
        if let bias {
            for r in 0..<rows { (output + r * outFeatures).update(from: bias, count: outFeatures) }
        }
        weight.withUnsafeBufferPointer { w in
            MatrixMultiply.gemm(
                transposeB: true, m: rows, n: outFeatures, k: inFeatures,
                a: input, lda: inFeatures, b: w.baseAddress!, ldb: inFeatures,
                beta: bias == nil ? 0 : 1, c: output, ldc: outFeatures)
        }
    }

    /// Array convenience for `apply`.
    public func callAsFunction(_ input: [Float], rows: Int) -> [Float] {
        precondition(input.count == rows * inFeatures, "linear input has \(input.count) values, expected \(rows)×\(inFeatures)")
        var output = [Float](repeating: 0, count: rows * outFeatures)
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in apply(x.baseAddress!, rows: rows, into: y.baseAddress!) }
        }
        return output
    }
}
