/// LayerNorm over the last dimension, applied in place to `rows` rows of `width` values.
public struct LayerNorm: Sendable {
    /// Where the row mean and variance are summed. PyTorch sums in float32 (`.float`); llama.cpp's
    /// CLIP graph is matched more closely summing in double (`.double`), as its ggml_norm does.
    public enum Accumulation: Sendable, Equatable {
        case float
        case double
    }

    /// What a row is scaled by: its standard deviation after centring (LayerNorm), or its root mean
    /// square without centring (RMSNorm, Zhang & Sennrich 2019; Qwen2.5-VL's tower).
    public enum Statistic: Sendable, Equatable {
        case standardDeviation
        case rootMeanSquare
    }

    public let weight: [Float]
    public let bias: [Float]
    public let eps: Float
    public let accumulation: Accumulation
    public var statistic = Statistic.standardDeviation

    public init(weight: Tensor, bias: Tensor, eps: Float = 1e-5, accumulation: Accumulation = .float) {
        precondition(weight.shape.count == 1 && bias.shape == weight.shape, "layer norm weight/bias shapes \(weight.shape) \(bias.shape)")
        self.init(weight: weight.storage, bias: bias.storage, eps: eps, accumulation: accumulation)
    }

    public init(weight: [Float], bias: [Float], eps: Float = 1e-5, accumulation: Accumulation = .float) {
        precondition(weight.count == bias.count, "layer norm weight/bias lengths \(weight.count) \(bias.count)")
        (self.weight, self.bias, self.eps, self.accumulation) = (weight, bias, eps, accumulation)
    }

    public var width: Int { weight.count }

    public func apply(_ x: UnsafeMutablePointer<Float>, rows: Int) {
        apply(x, rows: rows, into: x)
    }

    /// Normalises `rows` rows of `x` into `y` (which may be `x` itself).
    public func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let (source, target) = (x + r * width, y + r * width)
            switch (statistic, accumulation) {
            case (.standardDeviation, .float): normalizeSummingFloats(source, into: target)
            case (.standardDeviation, .double): normalizeSummingDoubles(source, into: target)
            case (.rootMeanSquare, _): scaleByRootMeanSquare(source, into: target)
            }
        }
    }

    /// ggml_rms_norm (squares summed in double, the scale in float), then the weight and bias.
    private func scaleByRootMeanSquare(_ row: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let n = width
        var sum: Double = 0
        for i in 0..<n { sum += Double(row[i] * row[i]) }
        let scale = 1 / (Float(sum / Double(n)) + eps).squareRoot()
        for i in 0..<n { out[i] = row[i] * scale * weight[i] + bias[i] }
    }

    private func normalizeSummingFloats(_ row: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let n = width
        var mean: Float = 0
        for i in 0..<n { mean += row[i] }
        mean /= Float(n)
        var variance: Float = 0  // two-pass: no cancellation for rows with a large mean
        for i in 0..<n { let d = row[i] - mean; variance += d * d }
        let inverse = 1 / (variance / Float(n) + eps).squareRoot()
        for i in 0..<n { out[i] = (row[i] - mean) * inverse * weight[i] + bias[i] }
    }

    private func normalizeSummingDoubles(_ row: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let n = width
        var mean: Double = 0
        for i in 0..<n { mean += Double(row[i]) }
        mean /= Double(n)
        var variance: Double = 0
        for i in 0..<n { let d = Double(row[i]) - mean; variance += d * d }
        let inverse = Float(1 / (variance / Double(n) + Double(eps)).squareRoot())
        let center = Float(mean)
        for i in 0..<n { out[i] = (row[i] - center) * inverse * weight[i] + bias[i] }
    }

    public func callAsFunction(_ x: inout [Float], rows: Int) {
        precondition(x.count == rows * width, "layer norm input has \(x.count) values, expected \(rows)×\(width)")
        x.withUnsafeMutableBufferPointer { apply($0.baseAddress!, rows: rows) }
    }

    /// In place, the rows split across the context's threads (each row's arithmetic unchanged).
    public func callAsFunction(_ x: inout [Float], rows: Int, compute: ComputeContext) {
        precondition(x.count == rows * width, "layer norm input has \(x.count) values, expected \(rows)×\(width)")
        guard rows > 0 else { return }
        x.withUnsafeMutableBufferPointer { x in
            let base = x.baseAddress!
            normalizeInParallel(base, rows: rows, into: base, compute: compute)
        }
    }

    /// The normalised rows as a new array, `x` untouched (a pre-norm block's sublayer input), the rows
    /// split across the context's threads.
    public func normalized(_ x: [Float], rows: Int, compute: ComputeContext) -> [Float] {
        precondition(x.count == rows * width, "layer norm input has \(x.count) values, expected \(rows)×\(width)")
        guard rows > 0 else { return [] }
        return [Float](unsafeUninitializedCapacity: x.count) { y, initialized in
            x.withUnsafeBufferPointer { normalizeInParallel($0.baseAddress!, rows: rows, into: y.baseAddress!, compute: compute) }
            initialized = x.count
        }
    }

    private func normalizeInParallel(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, compute: ComputeContext) {
        let width = self.width
        compute.parallelFor(rows, minimumPartSize: 32) { part in
            apply(x + part.lowerBound * width, rows: part.count, into: y + part.lowerBound * width)
        }
    }
}

/// Scales `vector` to unit Euclidean length (PyTorch's F.normalize with eps 1e-12).
public func l2Normalized(_ vector: [Float]) -> [Float] {
    var sum: Float = 0
    for v in vector { sum += v * v }
    let scale = 1 / max(sum.squareRoot(), 1e-12)
    return vector.map { $0 * scale }
}

/// The dot product of two equal-length vectors.
public func dot(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "dot of lengths \(a.count) and \(b.count)")
    var sum: Float = 0
    for i in a.indices { sum += a[i] * b[i] }
    return sum
}
