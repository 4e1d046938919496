// C = A · B in bf16: the twin of `PackedMatrix` for `precision: "bf16"` image encoding.
//
// B (a layer's weights) is rounded to bf16 once, at load, and packed for AVX-512 BF16's `vdpbf16ps`,
// which multiplies pairs of bf16 values and adds both products to an fp32 lane. The activations are
// rounded to bf16 per product, one k-slice of a block of rows at a time, just before the micro-kernel
// reads them; all sums stay fp32. The blocking is `PackedMatrix`'s: a panel's k-slice in L1, a block of
// A rows in L2, the epilogue (bias, residual, ReLU) applied to each tile while it is in registers.
// The micro-kernels are C (CVLMBF16/BF16Tiles.c, why there); everything else is here.
import CVLMBF16
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if arch(x86_64) && canImport(_Builtin_intrinsics.intel)
import _Builtin_intrinsics.intel.cpuid
#endif

/// The arithmetic of an image tower's matrix products.
public enum MatrixPrecision: String, Sendable, CaseIterable {
    /// float32 throughout (the default; the parity tests hold it to open_clip).
    case fp32
    /// bf16 weights and activations, products summed in fp32 (AVX-512 BF16 CPUs only: `BF16.isSupported`).
    case bf16
}

/// bfloat16 helpers: the upper half of a float32.
public enum BF16 {
    /// Whether this CPU has AVX-512 BF16 (cpuid leaf 7 subleaf 1, EAX bit 5) with AVX-512 F/BW/VL and the
    /// OS saving the AVX-512 register state (OSXSAVE, and leaf 0xD's SSE, AVX, opmask and ZMM states).
    /// The environment variable VLMD_NO_BF16 (any value) turns it off, as on a CPU without it.
    public static let isSupported: Bool = {
        guard getenv("VLMD_NO_BF16") == nil else { return false }
        #if arch(x86_64) && canImport(_Builtin_intrinsics.intel)
        var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
        guard __get_cpuid_count(1, 0, &a, &b, &c, &d) != 0, c & (1 << 27) != 0 else { return false }
        guard __get_cpuid_count(0xD, 0, &a, &b, &c, &d) != 0, a & 0xE6 == 0xE6 else { return false }
        guard __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0, b & (1 << 16) != 0, b & (1 << 30) != 0, b & (1 << 31) != 0,
              a >= 1 else { return false }
        guard __get_cpuid_count(7, 1, &a, &b, &c, &d) != 0 else { return false }
        return a & (1 << 5) != 0
        #else
        return false
        #endif
    }()

    /// The precisions this CPU can encode images at.
    public static var availablePrecisions: [MatrixPrecision] { isSupported ? [.fp32, .bf16] : [.fp32] }

    /// What runs the bf16 products here, for reports; nil where bf16 is not offered.
    public static var kernelDescription: String? {
        isSupported ? "AVX-512 BF16 (vdpbf16ps) 12x32 tiles, fp32 accumulation" : nil
    }

    /// `x` rounded to bf16, to nearest with ties to even (NaN stays a quiet NaN).
    public static func rounded(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// The float32 a bf16 value stands for (exact).
    public static func widened(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }
}

/// What the convolutions and linear layers multiply by: a right-hand matrix packed once for products
/// with a fused epilogue, in fp32 (`PackedMatrix`) or bf16 (`BF16Matrix`).
protocol PackedProduct: Sendable {
    var rows: Int { get }
    var columns: Int { get }
    func multiply(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
                  bias: [Float], accumulate: Bool, relu: Bool, compute: ComputeContext)
    func multiplyOnThisThread(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
                              bias: [Float])
}

extension PackedMatrix: PackedProduct {}

extension MatrixPrecision {
    /// `b` ([rows × columns], row-major) packed for products at this precision.
    func packed(_ b: [Float], rows: Int, columns: Int) -> any PackedProduct {
        switch self {
        case .fp32: PackedMatrix(b, rows: rows, columns: columns)
        case .bf16: BF16Matrix(b, rows: rows, columns: columns)
        }
    }
}

/// A right-hand matrix B [rows × columns] rounded to bf16 and packed for `vdpbf16ps` products `A · B`.
/// Only build one where `BF16.isSupported`.
public struct BF16Matrix: PackedProduct {
    /// The inner dimension of the product.
    public let rows: Int
    public let columns: Int
    /// k-slices of `depthBlock` rows (the last one shorter), each holding its panels one after the other;
    /// a panel holds, per pair of rows (2q, 2q+1), its 32 columns as (B[2q][j], B[2q+1][j]) bf16 pairs
    /// (zero past `rows` and `columns`).
    let storage: [UInt16]
    /// Rows per k-slice, even: the inner dimension split evenly into slices of at most 256, so that a
    /// panel's slice (16 KiB) and a tile's rows (6 KiB) stay in L1.
    let depthBlock: Int

    static let panelWidth = Int(vlm_bf16_panel_width)
    static let tileRows = Int(vlm_bf16_tile_rows)
    /// A rows per L2 block (a whole number of tiles).
    static let rowBlock = 240
    var panelCount: Int { (columns + Self.panelWidth - 1) / Self.panelWidth }

    public init(_ b: [Float], rows: Int, columns: Int) {
        precondition(b.count == rows * columns, "bf16 matrix of \(rows)×\(columns) given \(b.count) values")
        self.init(rows: rows, columns: columns) { k, j in b[k * columns + j] }
    }

    /// Packs B from its elements, `element(k, j)` = B[k][j].
    public init(rows: Int, columns: Int, element: (Int, Int) -> Float) {
        precondition(BF16.isSupported, "bf16 products need AVX-512 BF16")
        (self.rows, self.columns) = (rows, columns)
        let slices = max(1, (rows + 255) / 256)
        depthBlock = max(2, ((rows + slices - 1) / slices + 1) & ~1)
        let (width, panels) = (Self.panelWidth, (columns + Self.panelWidth - 1) / Self.panelWidth)
        var packed = [UInt16](repeating: 0, count: (rows + 1) / 2 * 2 * panels * width)
        for k0 in Swift.stride(from: 0, to: rows, by: depthBlock) {
            for p in 0..<panels {
                let panel = Self.panelOffset(k0: k0, panel: p, rows: rows, depthBlock: depthBlock, panels: panels)
                for k in k0..<min(rows, k0 + depthBlock) {
                    let (pair, half) = ((k - k0) / 2, (k - k0) % 2)
                    for j in 0..<min(width, columns - p * width) {
                        packed[panel + (pair * width + j) * 2 + half] = BF16.rounded(element(k, p * width + j))
                    }
                }
            }
        }
        storage = packed
    }

    /// Where panel `panel` of the k-slice starting at row `k0` begins.
    static func panelOffset(k0: Int, panel: Int, rows: Int, depthBlock: Int, panels: Int) -> Int {
        let pairs = (min(depthBlock, rows - k0) + 1) / 2
        return k0 * panels * panelWidth + panel * pairs * 2 * panelWidth
    }

    /// c[m × columns] = (accumulate ? c : 0) + bf16(a[m × rows]) · B + bias, then max(·, 0) when `relu`.
    public func multiply(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
                         bias: [Float], accumulate: Bool, relu: Bool, compute: ComputeContext) {
        multiply(a, lda: lda, m: m, into: c, ldc: ldc, bias: bias, accumulate: accumulate, relu: relu, splitAcross: compute)
    }

    func multiplyOnThisThread(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
                              bias: [Float]) {
        multiply(a, lda: lda, m: m, into: c, ldc: ldc, bias: bias, accumulate: false, relu: false, splitAcross: nil)
    }

    private func multiply(_ a: UnsafePointer<Float>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
                          bias: [Float], accumulate: Bool, relu: Bool, splitAcross compute: ComputeContext?) {
        precondition(bias.count == columns, "bias has \(bias.count) values for \(columns) columns")
        guard m > 0, columns > 0 else { return }
        storage.withUnsafeBufferPointer { b in
            bias.withUnsafeBufferPointer { bias in
                let product = BF16Product(matrix: self, a: a, lda: lda, b: b.baseAddress!, c: c, ldc: ldc, bias: bias.baseAddress!,
                                          accumulate: accumulate, relu: relu)
                guard let compute else { return product.block(rows: 0..<m, panels: 0..<panelCount) }
                product.run(m: m, compute: compute)
            }
        }
    }

    /// c[m × columns] = a · B on this thread, `a` already bf16: m rows of `rows` values (an even count),
    /// row stride `lda`. For callers that round while producing A (the Winograd input transform).
    func multiplyOnThisThread(rounded a: UnsafePointer<UInt16>, lda: Int, m: Int, into c: UnsafeMutablePointer<Float>, ldc: Int) {
        precondition(rows % 2 == 0, "pre-rounded bf16 rows come in whole pairs")
        guard m > 0, columns > 0 else { return }
        storage.withUnsafeBufferPointer { b in
            for k0 in Swift.stride(from: 0, to: rows, by: depthBlock) {
                let kc = min(depthBlock, rows - k0)
                multiplySlice(a + k0, lda: lda, rows: m, k0: k0, pairs: kc / 2, panels: 0..<panelCount, b: b.baseAddress!,
                              into: c, ldc: ldc, bias: nil, load: k0 > 0, finish: false, relu: false)
            }
        }
    }

    /// c[rows × panels' columns] (+)= a · (k-slice `k0` of B, `pairs` row pairs), tile by tile: `a` holds the
    /// slice's bf16 rows (stride `lda`); `load` starts from c, `finish` adds `bias` (then ReLU with `relu`).
    func multiplySlice(_ a: UnsafePointer<UInt16>, lda: Int, rows m: Int, k0: Int, pairs: Int, panels: Range<Int>,
                       b: UnsafePointer<UInt16>, into c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?,
                       load: Bool, finish: Bool, relu: Bool) {
        let width = Self.panelWidth
        for p in panels {
            let panel = b + Self.panelOffset(k0: k0, panel: p, rows: rows, depthBlock: depthBlock, panels: panelCount)
            let j0 = p * width
            for t in Swift.stride(from: 0, to: m, by: Self.tileRows) {
                vlm_bf16_tile(a + t * lda, lda, Int32(min(Self.tileRows, m - t)), Int32(pairs), panel, c + t * ldc + j0, ldc,
                              Int32(min(width, columns - j0)), bias.map { $0 + j0 }, load ? 1 : 0, finish ? 1 : 0, relu ? 1 : 0)
            }
        }
    }
}

/// One bf16 product over raw pointers, split across threads and blocked for the caches.
private struct BF16Product {
    let matrix: BF16Matrix
    let a: UnsafePointer<Float>
    let lda: Int
    let b: UnsafePointer<UInt16>
    let c: UnsafeMutablePointer<Float>
    let ldc: Int
    let bias: UnsafePointer<Float>
    let accumulate: Bool
    let relu: Bool

    func run(m: Int, compute: ComputeContext) {
        compute.splitProduct(rows: m, depth: matrix.rows, columns: matrix.columns, tileRows: BF16Matrix.tileRows,
                             panels: matrix.panelCount, block)
    }

    /// k-slices, then L2 row blocks (rounded to bf16 once per slice), then panels, then 12-row tiles.
    func block(rows: Range<Int>, panels: Range<Int>) {
        let (depth, depthBlock) = (matrix.rows, matrix.depthBlock)
        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: BF16Matrix.rowBlock * depthBlock) { rounded in
            let roundedRows = rounded.baseAddress!
            for k0 in stride(from: 0, to: depth, by: depthBlock) {
                let kc = min(depthBlock, depth - k0)
                let pairs = (kc + 1) / 2
                let (first, last) = (k0 == 0, k0 + kc == depth)
                for r0 in stride(from: rows.lowerBound, to: rows.upperBound, by: BF16Matrix.rowBlock) {
                    let r1 = min(rows.upperBound, r0 + BF16Matrix.rowBlock)
                    vlm_bf16_round_rows(a + r0 * lda + k0, lda, Int32(r1 - r0), Int32(kc), roundedRows, 2 * pairs)
                    matrix.multiplySlice(roundedRows, lda: 2 * pairs, rows: r1 - r0, k0: k0, pairs: pairs, panels: panels, b: b,
                                         into: c + r0 * ldc, ldc: ldc, bias: bias, load: !first || accumulate, finish: last, relu: relu)
                }
            }
        }
    }
}

extension ComputeContext {
    /// Runs `block(rows, panels)` over a packed product of `rows` × `columns` (inner dimension `depth`):
    /// on this thread when it is small, else split across threads by row tiles, or by column panels where
    /// a few tiles do not divide evenly among the threads (one ViT image's 50 rows are 9 tiles of 6, the
    /// last ragged, 5 + 4 by tiles) and the panel split leaves the busiest thread ≥ 5 % less work (each
    /// thread then reads all of A, but only its share of the weights). Same arithmetic per element either way.
    func splitProduct(rows m: Int, depth: Int, columns: Int, tileRows: Int, panels: Int,
                      _ block: (_ rows: Range<Int>, _ panels: Range<Int>) -> Void) {
        let tiles = (m + tileRows - 1) / tileRows
        let work = 2 * Double(m) * Double(depth) * Double(columns)
        let parts = work < 4e6 ? 1 : threads
        let busiestByTiles = (tiles + parts - 1) / parts * panels, busiestByPanels = tiles * ((panels + parts - 1) / parts)
        if parts == 1 {
            block(0..<m, 0..<panels)
        } else if (tiles >= 4 * parts || panels < parts) && 20 * busiestByPanels > 19 * busiestByTiles {
            parallelFor(tiles) { part in block((part.lowerBound * tileRows)..<min(m, part.upperBound * tileRows), 0..<panels) }
        } else {
            parallelFor(panels) { part in block(0..<m, part) }
        }
    }
}

/// A fully connected layer (y = x · Wᵀ + b) with bf16 weights: `PackedLinear`'s bf16 twin.
public struct BF16Linear: LinearLayer {
    public let inFeatures: Int
    public let outFeatures: Int
    let weight: BF16Matrix
    let bias: [Float]

    public init(_ linear: Linear) {
        let (inFeatures, outFeatures) = (linear.inFeatures, linear.outFeatures)
        (self.inFeatures, self.outFeatures) = (inFeatures, outFeatures)
        weight = BF16Matrix(rows: inFeatures, columns: outFeatures) { k, j in linear.weight[j * inFeatures + k] }
        bias = linear.bias ?? [Float](repeating: 0, count: outFeatures)
    }

    public func apply(_ input: UnsafePointer<Float>, rows: Int, into output: UnsafeMutablePointer<Float>, compute: ComputeContext) {
        weight.multiply(input, lda: inFeatures, m: rows, into: output, ldc: outFeatures, bias: bias, accumulate: false, relu: false,
                        compute: compute)
    }
}
