/// y = x · Wᵀ + b over row batches, whatever the weights are stored as: the interface transformer
/// blocks are written against, so one block serves float32 checkpoints and GGUF files alike.
public protocol LinearLayer: Sendable {
    var inFeatures: Int { get }
    var outFeatures: Int { get }
    /// Reads `rows` rows of `inFeatures` values, writes `rows` rows of `outFeatures` values.
    func apply(_ input: UnsafePointer<Float>, rows: Int, into output: UnsafeMutablePointer<Float>, compute: ComputeContext)
}

extension LinearLayer {
    /// Array form of `apply`. The output is not zeroed first: `apply` writes every value of it (a
    /// ViT's products would otherwise clear megabytes per layer only to overwrite them).
    public func forward(_ input: [Float], rows: Int, compute: ComputeContext) -> [Float] {
        precondition(input.count == rows * inFeatures, "linear input has \(input.count) values, expected \(rows)×\(inFeatures)")
        let count = rows * outFeatures
        guard count > 0 else { return [] }
        return [Float](unsafeUninitializedCapacity: count) { output, initialized in
            input.withUnsafeBufferPointer { x in apply(x.baseAddress!, rows: rows, into: output.baseAddress!, compute: compute) }
            initialized = count
        }
    }
}

extension Linear: LinearLayer {
    /// One BLAS call, which OpenBLAS threads itself.
    public func apply(_ input: UnsafePointer<Float>, rows: Int, into output: UnsafeMutablePointer<Float>, compute: ComputeContext) {
        apply(input, rows: rows, into: output)
    }
}

/// A linear layer over a GGUF weight matrix (ggml ne = [in, out]) with a float32 bias.
///
/// F32 weights are read in place, and block formats (Q8_0...) run ggml's quantised arithmetic in place.
/// F16 and BF16 are expanded to float32 per product, into `PackedMatrix`'s layout: that costs O(weights),
/// the product O(rows × weights), and one packed product over all of an image's tokens is about 100×
/// faster than the per-row fp16 kernels at a vision tower's ~200-600 rows, while the weights stay half
/// the size in memory. (llama.cpp rounds activations to fp16 for F16 weights; the difference stays far
/// inside its parity tolerance.)
public struct QuantizedLinear: LinearLayer, @unchecked Sendable {
    /// How F16/BF16 weights, expanded per product, are multiplied.
    public enum ExpandedProduct: Sendable {
        /// `PackedMatrix` on the context's threads (the default).
        case packed
        /// One OpenBLAS sgemm: its summation order, for a product whose reference parity depends on it.
        case blas
    }

    public let weight: QuantizedMatrix
    public let bias: [Float]?
    public let expandedProduct: ExpandedProduct

    public init(weight: QuantizedMatrix, bias: [Float]?, expandedProduct: ExpandedProduct = .packed) {
        precondition(bias == nil || bias!.count == weight.rows, "bias has \(bias!.count) values for \(weight.rows) outputs")
        (self.weight, self.bias, self.expandedProduct) = (weight, bias, expandedProduct)
    }

    public var inFeatures: Int { weight.columns }
    public var outFeatures: Int { weight.rows }

    public func apply(_ input: UnsafePointer<Float>, rows: Int, into output: UnsafeMutablePointer<Float>, compute: ComputeContext) {
        if weight.format == .f32 || weight.format.blockLength > 1 {
            // Block formats (Q8_0, K-quants...) go through ggml's own arithmetic: activations quantised to
            // the partner format, integer block dot products, as llama.cpp's mmproj matrices run.
            weight.multiply(input, batch: rows, into: output, compute: compute)
        } else if expandedProduct == .blas {
            var expanded = [Float](repeating: 0, count: weight.rows * weight.columns)
            expanded.withUnsafeMutableBufferPointer { e in
                for r in 0..<weight.rows { weight.dequantizeRow(r, into: e.baseAddress! + r * weight.columns) }
                MatrixMultiply.gemm(transposeB: true, m: rows, n: weight.rows, k: weight.columns, a: input, lda: weight.columns,
                                    b: e.baseAddress!, ldb: weight.columns, c: output, ldc: weight.rows)
            }
        } else {
            // Expanded straight into the packed layout, on the context's threads, and multiplied there too:
            // OpenBLAS's own threads would spin beside this pool's between the tower's steps.
            let packed = PackedMatrix(transposing: { weight.dequantizeRow($0, into: $1) }, rows: inFeatures, columns: outFeatures,
                                      compute: compute)
            packed.multiply(input, lda: inFeatures, m: rows, into: output, ldc: outFeatures,
                            bias: bias ?? [Float](repeating: 0, count: outFeatures), accumulate: false, relu: false, compute: compute)
            return
        }
        guard let bias else { return }
        for r in 0..<rows {
            let row = output + r * outFeatures
            for j in 0..<outFeatures { row[j] += bias[j] }
        }
    }
}

/// x += y elementwise (residual connections).
public func addInPlace(_ x: inout [Float], _ y: [Float]) {
    precondition(x.count == y.count, "adding \(y.count) values to \(x.count)")
    x.withUnsafeMutableBufferPointer { x in
        y.withUnsafeBufferPointer { y in
            for i in x.indices { x[i] += y[i] }
        }
    }
}

/// x *= y elementwise (a gated MLP's gate times its up projection).
public func multiplyInPlace(_ x: inout [Float], _ y: [Float]) {
    precondition(x.count == y.count, "multiplying \(x.count) values by \(y.count)")
    x.withUnsafeMutableBufferPointer { x in
        y.withUnsafeBufferPointer { y in
            for i in x.indices { x[i] *= y[i] }
        }
    }
}
