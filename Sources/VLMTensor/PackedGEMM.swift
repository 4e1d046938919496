// C = A · B with B packed once (a layer's weights, at load) and a fused epilogue (bias, residual, ReLU).
//
// OpenBLAS repacks both operands on every call; with the small row counts of a ResNet's late stages
// (49 pixels per image at 7×7) repacking a 512×2048 weight costs as much as the product itself. Here
// the weights are packed at load into panels of 16 columns, the activations are read in place (row
// by row, as the unfolding wrote them), and bias, shortcut and ReLU are applied to each 6×16 tile of
// the result while it is still in registers. The blocking follows GotoBLAS: a panel's k-slice stays in
// L1 while a block of A rows in L2 streams past it, and the panels of one k-slice are stored one after
// the other, so that a product with few rows reads the weights as one sequential stream.
//
// On x86-64 the micro-kernel is AVX2 + FMA (the numeric modules are compiled for Haswell; on AMD
// Zen 4 AVX2 has the same FMA throughput as AVX-512). Elsewhere, and with `-Xswiftc
// -DVLM_PORTABLE_KERNELS`, the product is OpenBLAS's sgemm followed by a separate epilogue pass.
#if arch(x86_64) && canImport(_Builtin_intrinsics.intel) && !VLM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel
#endif

/// A right-hand matrix B [rows × columns] (row-major, e.g. a convolution filter as [patch × out]),
/// packed for repeated products `A · B`.
public struct PackedMatrix: Sendable {
    /// The inner dimension of the product.
    public let rows: Int
    public let columns: Int
    /// Micro-kernel layout: k-slices of `depthBlock` rows (the last one shorter), each slice holding its
    /// panels one after the other, and a panel the slice's rows of 16 columns 16p..<16p+16 (zero past
    /// `columns`). Portable layout: B itself.
    let storage: [Float]
    /// Rows per k-slice: the inner dimension split evenly into slices of at most 320.
    let depthBlock: Int

    static let panelWidth = 16

    /// Rows per k-slice for an inner dimension of `rows`: split evenly into slices of at most 320.
    static func depthBlock(rows: Int) -> Int {
        let slices = max(1, (rows + 319) / 320)
        return max(1, (rows + slices - 1) / slices)
    }

    var panelCount: Int { (columns + Self.panelWidth - 1) / Self.panelWidth }

    /// Where the panel `panel` of the k-slice starting at row `k0` begins in the micro-kernel layout.
    @inline(__always)
    func panelOffset(k0: Int, panel: Int) -> Int {
        Self.panelOffset(k0: k0, panel: panel, rows: rows, depthBlock: depthBlock, panels: panelCount)
    }

    @inline(__always)
    static func panelOffset(k0: Int, panel: Int, rows: Int, depthBlock: Int, panels: Int) -> Int {
        k0 * panels * panelWidth + panel * min(depthBlock, rows - k0) * panelWidth
    }

    public init(_ b: [Float], rows: Int, columns: Int) {
        precondition(b.count == rows * columns, "packed matrix of \(rows)×\(columns) given \(b.count) values")
        (self.rows, self.columns) = (rows, columns)
        depthBlock = Self.depthBlock(rows: rows)
        #if arch(x86_64) && canImport(_Builtin_intrinsics.intel) && !VLM_PORTABLE_KERNELS
        let width = Self.panelWidth
        let panels = (columns + width - 1) / width
        var packed = [Float](repeating: 0, count: panels * width * rows)
        for k0 in Swift.stride(from: 0, to: rows, by: depthBlock) {
            for p in 0..<panels {
                let panel = Self.panelOffset(k0: k0, panel: p, rows: rows, depthBlock: depthBlock, panels: panels)
                for k in k0..<min(rows, k0 + depthBlock) {
                    for j in 0..<min(width, columns - p * width) { packed[panel + (k - k0) * width + j] = b[k * columns + p * width + j] }
                }
            }
        }
        storage = packed
        #else
        storage = b
        #endif
    }

    /// B = Wᵀ for a weight W [columns × rows] held in another form (a GGUF matrix in F16), packed with its
    /// panels shared out across the context's threads: `row(j, into:)` writes W's row j (`rows` floats).
    /// For weights expanded per product rather than kept in float32 (half the memory).
    public init(transposing row: (Int, UnsafeMutablePointer<Float>) -> Void, rows: Int, columns: Int, compute: ComputeContext) {
        (self.rows, self.columns) = (rows, columns)
        depthBlock = Self.depthBlock(rows: rows)
        #if arch(x86_64) && canImport(_Builtin_intrinsics.intel) && !VLM_PORTABLE_KERNELS
        let (width, panels, depthBlock) = (Self.panelWidth, (columns + Self.panelWidth - 1) / Self.panelWidth, depthBlock)
        storage = [Float](unsafeUninitializedCapacity: panels * width * rows) { packed, initialized in
            let base = packed.baseAddress!
            compute.parallelFor(panels) { part in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: rows) { line in
                    for p in part {
                        for c in 0..<width {
                            let j = p * width + c
                            if j < columns { row(j, line.baseAddress!) } else { line.initialize(repeating: 0) }
                            for k0 in Swift.stride(from: 0, to: rows, by: depthBlock) {
                                let panel = base + Self.panelOffset(k0: k0, panel: p, rows: rows, depthBlock: depthBlock, panels: panels)
                                for k in k0..<min(rows, k0 + depthBlock) { panel[(k - k0) * width + c] = line[k] }
                            }
                        }
                    }
                }
            }
            initialized = panels * width * rows
        }
        #else
        storage = [Float](unsafeUninitializedCapacity: rows * columns) { b, initialized in
            let base = b.baseAddress!
            compute.parallelFor(columns) { part in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: rows) { line in
                    for j in part {
                        row(j, line.baseAddress!)
                        for k in 0..<rows { base[k * columns + j] = line[k] }
                    }
                }
            }
            initialized = rows * columns
        }
        #endif
    }

    /// c[m × columns] = (accumulate ? c : 0) + a[m × rows] · B + bias, then max(·, 0) when `relu`.
    /// `bias` has `columns` values; `lda` and `ldc` are row strides.
    public func multiply(
        _ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
        bias: [Float], accumulate: Bool, relu: Bool, compute: ComputeContext
    ) {
        multiply(a, lda: lda, m: m, into: c, ldc: ldc, bias: bias, accumulate: accumulate, relu: relu, splitAcross: compute)
    }

    /// `multiply` on the calling thread only: for callers that already run many independent products
    /// in parallel (Winograd's 36 per block), where splitting each one again would nest thread pools.
    func multiplyOnThisThread(
        _ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int, bias: [Float]
    ) {
        multiply(a, lda: lda, m: m, into: c, ldc: ldc, bias: bias, accumulate: false, relu: false, splitAcross: nil)
    }

    private func multiply(
        _ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
        bias: [Float], accumulate: Bool, relu: Bool, splitAcross compute: ComputeContext?
    ) {
        precondition(bias.count == columns, "bias has \(bias.count) values for \(columns) columns")
        guard m > 0, columns > 0 else { return }
        storage.withUnsafeBufferPointer { b in
            bias.withUnsafeBufferPointer { bias in
                #if arch(x86_64) && canImport(_Builtin_intrinsics.intel) && !VLM_PORTABLE_KERNELS
                let product = TiledProduct(matrix: self, a: a, lda: lda, b: b.baseAddress!, c: c, ldc: ldc,
                                           bias: bias.baseAddress!, accumulate: accumulate, relu: relu)
                if let compute { product.run(m: m, compute: compute) } else { product.block(rows: 0..<m, panels: 0..<panelCount) }
                #else
                MatrixMultiply.gemm(m: m, n: columns, k: rows, a: a, lda: lda, b: b.baseAddress!, ldb: columns,
                                    beta: accumulate ? 1 : 0, c: c, ldc: ldc)
                addBiasAndRelu(c, rows: m, ldc: ldc, bias: bias.baseAddress!, relu: relu, compute: compute)
                #endif
            }
        }
    }

    /// The portable epilogue: row += bias, then ReLU.
    private func addBiasAndRelu(_ c: UnsafeMutablePointer<Float>, rows: Int, ldc: Int, bias: UnsafePointer<Float>, relu: Bool,
                                compute: ComputeContext) {
        let n = columns
        compute.parallelFor(rows, minimumPartSize: 16) { part in
            for r in part {
                let row = c + r * ldc
                if relu {
                    for o in 0..<n { row[o] = max(row[o] + bias[o], 0) }
                } else {
                    for o in 0..<n { row[o] += bias[o] }
                }
            }
        }
    }
}

/// A fully connected layer (y = x · Wᵀ + b) with its weight packed once for `PackedMatrix`: for layers
/// applied to few rows at a time (an attention pool's 50 tokens), where repacking a large weight on
/// every call would cost as much as the product.
public struct PackedLinear: Sendable {
    public let inFeatures: Int
    public let outFeatures: Int
    let weight: PackedMatrix
    let bias: [Float]

    public init(_ linear: Linear) {
        (inFeatures, outFeatures) = (linear.inFeatures, linear.outFeatures)
        var transposed = [Float](repeating: 0, count: inFeatures * outFeatures)
        for o in 0..<outFeatures {
            for i in 0..<inFeatures { transposed[i * outFeatures + o] = linear.weight[o * inFeatures + i] }
        }
        weight = PackedMatrix(transposed, rows: inFeatures, columns: outFeatures)
        bias = linear.bias ?? [Float](repeating: 0, count: outFeatures)
    }

    /// `rows` input rows of `inFeatures` → `rows` output rows of `outFeatures`.
    public func callAsFunction(_ input: [Float], rows: Int, compute: ComputeContext) -> [Float] {
        forward(input, rows: rows, compute: compute)
    }
}

extension PackedLinear: LinearLayer {
    public func apply(_ input: UnsafePointer<Float>, rows: Int, into output: UnsafeMutablePointer<Float>, compute: ComputeContext) {
        weight.multiply(input, lda: inFeatures, m: rows, into: output, ldc: outFeatures, bias: bias, accumulate: false, relu: false,
                        compute: compute)
    }
}

#if arch(x86_64) && canImport(_Builtin_intrinsics.intel) && !VLM_PORTABLE_KERNELS
/// One product over raw pointers, split across threads and blocked for the caches.
private struct TiledProduct {
    let matrix: PackedMatrix
    let a: UnsafePointer<Float>
    let lda: Int
    let b: UnsafePointer<Float>
    let c: UnsafeMutablePointer<Float>
    let ldc: Int
    let bias: UnsafePointer<Float>
    let accumulate: Bool
    let relu: Bool

    static let tileRows = 6
    /// A rows per L2 block: 120 rows × a k-slice of ≤ 320 floats ≤ 150 KiB. A panel's k-slice (≤ 20 KiB)
    /// and a tile's A rows (≤ 7.5 KiB) stay in L1.
    static let rowBlock = 120

    var depth: Int { matrix.rows }
    var columns: Int { matrix.columns }
    var panelCount: Int { matrix.panelCount }

    func run(m: Int, compute: ComputeContext) {
        compute.splitProduct(rows: m, depth: depth, columns: columns, tileRows: Self.tileRows, panels: panelCount, block)
    }

    /// The blocked loop nest over a sub-matrix: k-slices, then L2 row blocks, then panels, then 6-row tiles.
    func block(rows: Range<Int>, panels: Range<Int>) {
        for k0 in stride(from: 0, to: depth, by: matrix.depthBlock) {
            let kc = min(matrix.depthBlock, depth - k0)
            let (first, last) = (k0 == 0, k0 + kc == depth)
            for r0 in stride(from: rows.lowerBound, to: rows.upperBound, by: Self.rowBlock) {
                let r1 = min(rows.upperBound, r0 + Self.rowBlock)
                for p in panels {
                    let panel = b + matrix.panelOffset(k0: k0, panel: p)
                    let j0 = p * PackedMatrix.panelWidth
                    for t in stride(from: r0, to: r1, by: Self.tileRows) {
                        tile(a + t * lda + k0, rows: min(Self.tileRows, r1 - t), depth: kc, panel: panel,
                             c: c + t * ldc + j0, columns: min(PackedMatrix.panelWidth, columns - j0), bias: bias + j0,
                             load: !first || accumulate, finish: last)
                    }
                }
            }
        }
    }

    /// The 6×16 micro-kernel: twelve 8-wide accumulators, two panel loads and six broadcasts per k.
    /// Missing rows (a ragged last tile) repeat row 0 and are not stored.
    @inline(__always)
    func tile(_ a: UnsafePointer<Float>, rows: Int, depth: Int, panel: UnsafePointer<Float>,
              c: UnsafeMutablePointer<Float>, columns: Int, bias: UnsafePointer<Float>, load: Bool, finish: Bool) {
        let a0 = a
        let a1 = rows > 1 ? a + lda : a
        let a2 = rows > 2 ? a + 2 * lda : a
        let a3 = rows > 3 ? a + 3 * lda : a
        let a4 = rows > 4 ? a + 4 * lda : a
        let a5 = rows > 5 ? a + 5 * lda : a
        var tile = TileStore(c: c, ldc: ldc, rows: rows, columns: columns)
        var (c00, c01) = load ? tile.load(0) : (_mm256_setzero_ps(), _mm256_setzero_ps())
        var (c10, c11) = load ? tile.load(1) : (_mm256_setzero_ps(), _mm256_setzero_ps())
        var (c20, c21) = load ? tile.load(2) : (_mm256_setzero_ps(), _mm256_setzero_ps())
        var (c30, c31) = load ? tile.load(3) : (_mm256_setzero_ps(), _mm256_setzero_ps())
        var (c40, c41) = load ? tile.load(4) : (_mm256_setzero_ps(), _mm256_setzero_ps())
        var (c50, c51) = load ? tile.load(5) : (_mm256_setzero_ps(), _mm256_setzero_ps())
        var p = panel
        for k in 0..<depth {
            let b0 = _mm256_loadu_ps(p)
            let b1 = _mm256_loadu_ps(p + 8)
            p += 16
            var x = _mm256_broadcast_ss(a0 + k)
            c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01)
            x = _mm256_broadcast_ss(a1 + k)
            c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11)
            x = _mm256_broadcast_ss(a2 + k)
            c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21)
            x = _mm256_broadcast_ss(a3 + k)
            c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31)
            x = _mm256_broadcast_ss(a4 + k)
            c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41)
            x = _mm256_broadcast_ss(a5 + k)
            c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51)
        }
        if finish {
            let bias0 = columns == 16 ? _mm256_loadu_ps(bias) : tile.partialBias(bias, half: 0)
            let bias1 = columns == 16 ? _mm256_loadu_ps(bias + 8) : tile.partialBias(bias, half: 1)
            let floor = relu ? _mm256_setzero_ps() : _mm256_set1_ps(-.infinity)
            func epilogue(_ v: __m256, _ b: __m256) -> __m256 { _mm256_max_ps(_mm256_add_ps(v, b), floor) }
            (c00, c01) = (epilogue(c00, bias0), epilogue(c01, bias1))
            (c10, c11) = (epilogue(c10, bias0), epilogue(c11, bias1))
            (c20, c21) = (epilogue(c20, bias0), epilogue(c21, bias1))
            (c30, c31) = (epilogue(c30, bias0), epilogue(c31, bias1))
            (c40, c41) = (epilogue(c40, bias0), epilogue(c41, bias1))
            (c50, c51) = (epilogue(c50, bias0), epilogue(c51, bias1))
        }
        tile.store(0, c00, c01)
        tile.store(1, c10, c11)
        tile.store(2, c20, c21)
        tile.store(3, c30, c31)
        tile.store(4, c40, c41)
        tile.store(5, c50, c51)
    }
}

/// Loads and stores one 6×16 tile of C, going through a zero-padded buffer where the tile is ragged.
private struct TileStore {
    let c: UnsafeMutablePointer<Float>
    let ldc: Int
    let rows: Int
    let columns: Int
    var spill: (SIMD16<Float>) = .zero

    init(c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int) {
        (self.c, self.ldc, self.rows, self.columns) = (c, ldc, rows, columns)
    }

    @inline(__always)
    mutating func load(_ row: Int) -> (__m256, __m256) {
        guard row < rows else { return (_mm256_setzero_ps(), _mm256_setzero_ps()) }
        let source = c + row * ldc
        if columns == 16 { return (_mm256_loadu_ps(source), _mm256_loadu_ps(source + 8)) }
        spill = .zero
        for j in 0..<columns { spill[j] = source[j] }
        return (spill.lowHalf, spill.highHalf)
    }

    @inline(__always)
    mutating func store(_ row: Int, _ low: __m256, _ high: __m256) {
        guard row < rows else { return }
        let target = c + row * ldc
        if columns == 16 {
            _mm256_storeu_ps(target, low)
            _mm256_storeu_ps(target + 8, high)
            return
        }
        spill = SIMD16(lowHalf: low, highHalf: high)
        for j in 0..<columns { target[j] = spill[j] }
    }

    /// Eight bias values of a ragged tile (half 0: columns 0..<8, half 1: 8..<16), zero past `columns`.
    func partialBias(_ bias: UnsafePointer<Float>, half: Int) -> __m256 {
        var values = SIMD8<Float>.zero
        for j in 0..<8 where half * 8 + j < columns { values[j] = bias[half * 8 + j] }
        return values
    }
}
#endif
