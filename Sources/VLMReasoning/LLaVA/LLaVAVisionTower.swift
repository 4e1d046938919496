// The LLaVA-1.5 image encoder as llama.cpp runs it (tools/mtmd, clip_graph_llava + PROJECTOR_TYPE_MLP):
//
//   pixels -> patch embedding (conv p x p, stride p) -> [patch_0 ... patch_{n-1}, CLS] + positions 0...n
//          -> pre-LayerNorm -> blocks 0..<blocksRun (pre-norm attention + MLP) -> post-LayerNorm (if any)
//          -> rows 1...n -> Linear mm.0 -> GELU -> Linear mm.2 -> [n, lmWidth] image-token embeddings
//
// Two llama.cpp particulars are reproduced on purpose, since parity with it is the contract:
//   * the class token is appended AFTER the patches (ggml_concat along the sequence) and so takes the
//     last position embedding;
//   * the projector reads sequence rows 1...n (the index list assumes the class token comes first), so
//     patch 0 is dropped and the class token's output is the last image token.
// Image token i (0-based) therefore carries patch i+1 for i < n-1; the last carries the class token.
import Foundation
import VLMImage
import VLMLanguage
import VLMTensor

/// `@unchecked Sendable`: immutable after load (weights are read-only views of a mapping).
public final class LLaVAVisionTower: @unchecked Sendable {
    public let hyperparameters: MMProjHyperparameters
    let weights: MMProjWeights
    public var threads: Int

    /// Loads `url` and checks every tensor against the header.
    public init(url: URL, threads: Int = 1) throws {
        let gguf = try GGUFFile(url: url)
        hyperparameters = try MMProjHyperparameters(gguf: gguf)
        weights = try MMProjWeights(gguf: gguf, hyperparameters: hyperparameters)
        self.threads = max(1, threads)
    }

    /// Width of the image-token embeddings (the LM's embedding width).
    public var outputWidth: Int { hyperparameters.projectionWidth }
    /// Image tokens per image.
    public var tokenCount: Int { hyperparameters.patchCount }
    /// Whether the last image token carries the class token (and token i patch i+1).
    public var hasClassToken: Bool { weights.classEmbedding != nil }

    /// Checks the projector feeds a language model of width `width`.
    public func checkCompatible(languageModelWidth width: Int) throws {
        guard width == outputWidth else { throw MMProjError.widthMismatch(projector: outputWidth, languageModel: width) }
    }

    /// Preprocesses and encodes `image`: [tokenCount][outputWidth], row-major.
    public func encode(_ image: RGBImage) throws -> [Float] {
        let pixels = try LLaVAPreprocessing(hyperparameters).pixels(image)
        return try encode(pixels: pixels)
    }

    /// Encodes preprocessed pixels ([y][x][channel], imageSize^2 x 3 normalised values).
    public func encode(pixels: [Float]) throws -> [Float] {
        let hp = hyperparameters, d = hp.width, n = hp.patchCount
        guard pixels.count == hp.imageSize * hp.imageSize * 3, pixels.allSatisfy(\.isFinite) else {
            throw MMProjError.notSupported("pixels must be \(hp.imageSize)x\(hp.imageSize)x3 finite values, got \(pixels.count) values")
        }
        let sequence = n + (weights.classEmbedding == nil ? 0 : 1)

        // Patch embedding: each patch flattened as (channel, y, x), times the conv kernel.
        var x = [Float](repeating: 0, count: sequence * d)
        multiply(weights.patchEmbedding, patchRows(pixels), rows: n, into: &x)
        if let bias = weights.patchBias { addRowBias(&x, bias, rows: n) }
        if let cls = weights.classEmbedding { for j in 0..<d { x[n * d + j] = cls[j] } }
        for i in 0..<x.count { x[i] += weights.positionEmbedding[i] }
        if let norm = weights.preNorm { layerNorm(&x, norm.weight, norm.bias, rows: sequence) }

        for block in weights.blocks { encoderBlock(&x, block, rows: sequence) }
        if let norm = weights.postNorm { layerNorm(&x, norm.weight, norm.bias, rows: sequence) }

        // llama.cpp's projector input: rows 1...n (see the header comment).
        let offset = weights.classEmbedding == nil ? 0 : 1
        let features = Array(x[(offset * d)..<((offset + n) * d)])
        var hidden = linear(weights.projector1, weights.projector1Bias, features, rows: n)
        gelu(&hidden)
        return linear(weights.projector2, weights.projector2Bias, hidden, rows: n)
    }

    // MARK: - The encoder block

    /// x += attention(ln1(x)); x += mlp(ln2(x)).
    private func encoderBlock(_ x: inout [Float], _ b: VisionBlockWeights, rows n: Int) {
        var h = x
        layerNorm(&h, b.norm1Weight, b.norm1Bias, rows: n)
        let q = linear(b.query, b.queryBias, h, rows: n)
        let k = linear(b.key, b.keyBias, h, rows: n)
        let v = linear(b.value, b.valueBias, h, rows: n)
        let attended = attention(q, k, v, rows: n)
        let projected = linear(b.output, b.outputBias, attended, rows: n)
        for i in 0..<x.count { x[i] += projected[i] }

        h = x
        layerNorm(&h, b.norm2Weight, b.norm2Bias, rows: n)
        var up = linear(b.up, b.upBias, h, rows: n)
        if hyperparameters.useGELU { gelu(&up) } else { Activation.quickGELU(&up) }
        let down = linear(b.down, b.downBias, up, rows: n)
        for i in 0..<x.count { x[i] += down[i] }
    }

    /// Bidirectional multi-head attention over the whole sequence, scale 1/sqrt(headDimension).
    private func attention(_ q: [Float], _ k: [Float], _ v: [Float], rows n: Int) -> [Float] {
        let hp = hyperparameters, d = hp.width
        var out = [Float](repeating: 0, count: n * d)
        let scratch = ScratchBuffer()
        q.withUnsafeBufferPointer { q in
            k.withUnsafeBufferPointer { k in
                v.withUnsafeBufferPointer { v in
                    out.withUnsafeMutableBufferPointer { o in
                        scaledDotProductAttention(
                            queries: q.baseAddress!, queryCount: n, queryStride: d, keys: k.baseAddress!,
                            values: v.baseAddress!, keyCount: n, keyStride: d, heads: hp.headCount,
                            headDim: hp.headDimension, causal: false, output: o.baseAddress!, outputStride: d,
                            scratch: scratch)
                    }
                }
            }
        }
        return out
    }

    // MARK: - Pieces

    /// [patch][channel * p * p + y * p + x] from [y][x][channel] pixels, patches in row-major grid order.
    private func patchRows(_ pixels: [Float]) -> [Float] {
        let hp = hyperparameters, p = hp.patchSize, side = hp.gridSide, size = hp.imageSize
        var rows = [Float](repeating: 0, count: hp.patchCount * 3 * p * p)
        for gy in 0..<side {
            for gx in 0..<side {
                let base = (gy * side + gx) * 3 * p * p
                for c in 0..<3 {
                    for y in 0..<p {
                        for x in 0..<p {
                            rows[base + (c * p + y) * p + x] = pixels[((gy * p + y) * size + gx * p + x) * 3 + c]
                        }
                    }
                }
            }
        }
        return rows
    }

    /// y = x W^T. F32 weights are read in place; F16 ones are expanded to Float for the product: that
    /// costs O(weights), the product O(rows x weights), and one BLAS call over all tokens is about 100x
    /// faster than the per-row fp16 kernels at a tower's ~200-600 rows. (llama.cpp rounds activations to
    /// fp16 for F16 weights; the difference stays far inside the parity tolerance.)
    private func multiply(_ w: QuantizedMatrix, _ x: [Float], rows: Int, into y: inout [Float]) {
        if w.format == .f32 {
            x.withUnsafeBufferPointer { x in
                y.withUnsafeMutableBufferPointer { w.multiply(x.baseAddress!, batch: rows, into: $0.baseAddress!, threads: threads) }
            }
            return
        }
        var expanded = [Float](repeating: 0, count: w.rows * w.columns)
        expanded.withUnsafeMutableBufferPointer { e in
            for r in 0..<w.rows { w.dequantizeRow(r, into: e.baseAddress! + r * w.columns) }
        }
        x.withUnsafeBufferPointer { x in
            expanded.withUnsafeBufferPointer { e in
                y.withUnsafeMutableBufferPointer { y in
                    MatrixMultiply.gemm(transposeB: true, m: rows, n: w.rows, k: w.columns, a: x.baseAddress!, lda: w.columns,
                                        b: e.baseAddress!, ldb: w.columns, c: y.baseAddress!, ldc: w.rows)
                }
            }
        }
    }

    /// y = x W^T + b for `rows` rows.
    private func linear(_ w: QuantizedMatrix, _ bias: [Float], _ x: [Float], rows: Int) -> [Float] {
        var y = [Float](repeating: 0, count: rows * w.rows)
        multiply(w, x, rows: rows, into: &y)
        addRowBias(&y, bias, rows: rows)
        return y
    }

    private func addRowBias(_ y: inout [Float], _ bias: [Float], rows: Int) {
        let width = bias.count
        for r in 0..<rows { for j in 0..<width { y[r * width + j] += bias[j] } }
    }

    private func layerNorm(_ x: inout [Float], _ weight: [Float], _ bias: [Float], rows: Int) {
        let d = weight.count, eps = hyperparameters.layerNormEpsilon
        for r in 0..<rows {
            var mean: Double = 0
            for j in 0..<d { mean += Double(x[r * d + j]) }
            mean /= Double(d)
            var variance: Double = 0
            for j in 0..<d { let c = Double(x[r * d + j]) - mean; variance += c * c }
            let scale = Float(1 / (variance / Double(d) + Double(eps)).squareRoot())
            for j in 0..<d { x[r * d + j] = (x[r * d + j] - Float(mean)) * scale * weight[j] + bias[j] }
        }
    }

    /// ggml_gelu: the tanh approximation, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    private func gelu(_ x: inout [Float]) {
        let c: Float = 0.7978845608028654
        for i in 0..<x.count { let v = x[i]; x[i] = 0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v))) }
    }
}

/// llama.cpp's preprocessing for LLaVA-1.5 projectors (clip_image_preprocess, the pad-to-square branch),
/// as measured against libmtmd: the image is resized to fit inside imageSize x imageSize keeping its
/// aspect ratio (new side = ceil(side * scale)), with Pillow-style (antialiased) bicubic resampling,
/// pasted centred (offset floor((size - side) / 2)) on a canvas of LLaVA's pad colour (122, 116, 104),
/// then scaled to [0, 1] and normalised per channel with image_mean / image_std.
public struct LLaVAPreprocessing: Sendable {
    public let size: Int
    public let mean: [Float], std: [Float]
    public static let padColour: (UInt8, UInt8, UInt8) = (122, 116, 104)

    public init(_ hp: MMProjHyperparameters) {
        size = hp.imageSize
        mean = hp.imageMean
        std = hp.imageStd
    }

    /// Where the image lands on the square canvas: x, y, width, height in canvas pixels.
    public func placement(width: Int, height: Int) -> (x: Int, y: Int, width: Int, height: Int) {
        let scale = min(Double(size) / Double(width), Double(size) / Double(height))
        let w = min(size, max(1, Int((Double(width) * scale).rounded(.up))))
        let h = min(size, max(1, Int((Double(height) * scale).rounded(.up))))
        return ((size - w) / 2, (size - h) / 2, w, h)
    }

    /// [y][x][channel] normalised values of the padded, resized image.
    public func pixels(_ image: RGBImage) throws -> [Float] {
        let place = placement(width: image.width, height: image.height)
        let resized = try image.resized(width: place.width, height: place.height, filter: .bicubic)
        var out = [Float](repeating: 0, count: size * size * 3)
        let pad = [Self.padColour.0, Self.padColour.1, Self.padColour.2]
        for y in 0..<size {
            for x in 0..<size {
                let inside = x >= place.x && x < place.x + place.width && y >= place.y && y < place.y + place.height
                let rgb = inside ? resized[x - place.x, y - place.y] : (pad[0], pad[1], pad[2])
                let values = [rgb.0, rgb.1, rgb.2]
                for c in 0..<3 { out[(y * size + x) * 3 + c] = (Float(values[c]) / 255 - mean[c]) / std[c] }
            }
        }
        return out
    }
}
