// The packed product's micro-kernel for CPUs with AVX-512 F: 12 rows × 32 columns per tile.
//
// Why a second kernel when Zen 4 executes a 512-bit FMA as two 256-bit halves: AVX-512 has 32 vector
// registers, not 16, so a tile can hold 24 accumulators instead of 12. Per step of the inner dimension
// the AVX2 6×16 tile does 12 FMAs for 2 panel loads and 6 broadcasts (0.67 loads per FMA); this tile does
// 24 (each the work of two AVX2 FMAs) for 2 panel loads and 12 broadcasts folded into the FMAs
// (0.29 loads per 8-lane FMA), which leaves the FMA pipes as the only limit. Ragged tiles are written
// through AVX-512 masks instead of a spill buffer.
//
// The kernel reads `PackedMatrix`'s layout unchanged (k-slices of 16-column panels, a slice's panels one
// after the other), taking two neighbouring panels as one 32-column tile, so the same packed weights serve
// this kernel and the AVX2 one. This module is compiled for Skylake-AVX512 (F, CD, BW, DQ, VL); VLMTensor
// calls it only after cpuid has found AVX-512 F with the OS saving the ZMM state (`isSupported`). The one
// entry point is `@inline(never)` and nothing here is inlinable, so no AVX-512 code reaches the
// Haswell-targeted modules.
#if arch(x86_64) && canImport(_Builtin_intrinsics.intel)
import _Builtin_intrinsics.intel
import _Builtin_intrinsics.intel.cpuid

public enum PackedProduct512 {
    /// Whether this CPU runs the kernel: AVX-512 F (cpuid leaf 7) with XSAVE enabled by the OS for the
    /// opmask, upper-ZMM and ZMM16-31 states (leaf 0xD). Linux enables every state the CPU reports.
    public static let isSupported: Bool = {
        var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
        guard __get_cpuid_count(1, 0, &a, &b, &c, &d) != 0, c & (1 << 27) != 0 else { return false }  // OSXSAVE
        guard __get_cpuid_count(0xD, 0, &a, &b, &c, &d) != 0, a & 0xE6 == 0xE6 else { return false }
        guard __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0 else { return false }
        return b & (1 << 16) != 0
    }()

    /// Rows per tile.
    public static let tileRows = 12

    /// The operands of one product C = A · B (+ bias, ReLU) with B in `PackedMatrix`'s layout.
    public struct Operands {
        public var a: UnsafePointer<Float>
        public var lda: Int
        /// The packed storage of B.
        public var b: UnsafePointer<Float>
        public var c: UnsafeMutablePointer<Float>
        public var ldc: Int
        public var bias: UnsafePointer<Float>
        /// B's rows (the inner dimension) and columns.
        public var depth: Int
        public var columns: Int
        /// B's k-slice height and number of 16-column panels.
        public var depthBlock: Int
        public var panelCount: Int
        /// Add to C's contents instead of overwriting them; clamp the result at 0.
        public var accumulate: Bool
        public var relu: Bool

        public init(a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int,
                    bias: UnsafePointer<Float>, depth: Int, columns: Int, depthBlock: Int, panelCount: Int,
                    accumulate: Bool, relu: Bool) {
            (self.a, self.lda, self.b, self.c, self.ldc, self.bias) = (a, lda, b, c, ldc, bias)
            (self.depth, self.columns, self.depthBlock, self.panelCount) = (depth, columns, depthBlock, panelCount)
            (self.accumulate, self.relu) = (accumulate, relu)
        }
    }

    /// A rows per L2 block (a multiple of the tile height): 120 rows of a k-slice of ≤ 320 floats ≤ 150 KiB.
    static let rowBlock = 120

    /// The blocked loop nest over rows `rows` and panels `panels` of C: k-slices, then L2 row blocks, then
    /// pairs of panels (whose k-slice stays in L1), then 12-row tiles. Only call when `isSupported`.
    @inline(never)
    public static func block(_ o: Operands, rows: Range<Int>, panels: Range<Int>) {
        for k0 in stride(from: 0, to: o.depth, by: o.depthBlock) {
            let kc = min(o.depthBlock, o.depth - k0)
            let (first, last) = (k0 == 0, k0 + kc == o.depth)
            // PackedMatrix.panelOffset: the slice starts after k0 rows of every panel; its panels are kc × 16 each.
            let slice = o.b + k0 * o.panelCount * 16
            for r0 in stride(from: rows.lowerBound, to: rows.upperBound, by: rowBlock) {
                let r1 = min(rows.upperBound, r0 + rowBlock)
                for p in stride(from: panels.lowerBound, to: panels.upperBound, by: 2) {
                    let panel = slice + p * kc * 16
                    let j0 = p * 16
                    // An odd last panel reads itself twice; the second half is masked off on store.
                    let second = p + 1 < panels.upperBound ? panel + kc * 16 : panel
                    let width = min(p + 1 < panels.upperBound ? 32 : 16, o.columns - j0)
                    for t in stride(from: r0, to: r1, by: tileRows) {
                        tile(o, a: o.a + t * o.lda + k0, rows: min(tileRows, r1 - t), depth: kc, panels: (panel, second),
                             c: o.c + t * o.ldc + j0, columns: width, bias: o.bias + j0, load: !first || o.accumulate, finish: last)
                    }
                }
            }
        }
    }

    /// One 12×32 tile: 24 accumulators, two panel loads and twelve broadcasts per step of k. Missing rows
    /// (a ragged last tile) repeat row 0 and are not stored.
    @inline(__always)
    static func tile(_ o: Operands, a: UnsafePointer<Float>, rows: Int, depth: Int,
                     panels: (UnsafePointer<Float>, UnsafePointer<Float>), c: UnsafeMutablePointer<Float>,
                     columns: Int, bias: UnsafePointer<Float>, load: Bool, finish: Bool) {
        let lda = o.lda
        func row(_ r: Int) -> UnsafePointer<Float> { r < rows ? a + r * lda : a }
        let (a0, a1, a2, a3, a4, a5) = (row(0), row(1), row(2), row(3), row(4), row(5))
        let (a6, a7, a8, a9, a10, a11) = (row(6), row(7), row(8), row(9), row(10), row(11))
        let store = TileMasks(columns: columns, rows: rows, c: c, ldc: o.ldc)
        var (c00, c01) = load ? store.load(0) : (_mm512_setzero_ps(), _mm512_setzero_ps())
        var (c10, c11) = load ? store.load(1) : (_mm512_setzero_ps(), _mm512_setzero_ps())
        var (c20, c21) = load ? store.load(2) : (_mm512_setzero_ps(), _mm512_setzero_ps())
        var (c30, c31) = load ? store.load(3) : (_mm512_setzero_ps(), _mm512_setzero_ps())
        var (c40, c41) = load ? store.load(4) : (_mm512_setzero_ps(), _mm512_setzero_ps())
        var (c50, c51) = load ? store.load(5) : (_mm512_setzero_ps(), _mm512_setzero_ps())
        var (c60, c61) = load ? store.load(6) : (_mm512_setzero_ps(), _mm512_setzero_ps())
        var (c70, c71) = load ? store.load(7) : (_mm512_setzero_ps(), _mm512_setzero_ps())
        var (c80, c81) = load ? store.load(8) : (_mm512_setzero_ps(), _mm512_setzero_ps())
        var (c90, c91) = load ? store.load(9) : (_mm512_setzero_ps(), _mm512_setzero_ps())
        var (ca0, ca1) = load ? store.load(10) : (_mm512_setzero_ps(), _mm512_setzero_ps())
        var (cb0, cb1) = load ? store.load(11) : (_mm512_setzero_ps(), _mm512_setzero_ps())
        var (p, q) = panels
        for k in 0..<depth {
            let b0 = _mm512_loadu_ps(p), b1 = _mm512_loadu_ps(q)
            p += 16
            q += 16
            @inline(__always) func step(_ x: UnsafePointer<Float>, _ low: inout __m512, _ high: inout __m512) {
                let v = _mm512_set1_ps(x[k])
                low = _mm512_fmadd_ps(v, b0, low)
                high = _mm512_fmadd_ps(v, b1, high)
            }
            step(a0, &c00, &c01); step(a1, &c10, &c11); step(a2, &c20, &c21); step(a3, &c30, &c31)
            step(a4, &c40, &c41); step(a5, &c50, &c51); step(a6, &c60, &c61); step(a7, &c70, &c71)
            step(a8, &c80, &c81); step(a9, &c90, &c91); step(a10, &ca0, &ca1); step(a11, &cb0, &cb1)
        }
        if finish {
            let bias0 = _mm512_maskz_loadu_ps(store.low, bias), bias1 = _mm512_maskz_loadu_ps(store.high, bias + 16)
            let floor = o.relu ? _mm512_setzero_ps() : _mm512_set1_ps(-.infinity)
            @inline(__always) func epilogue(_ low: inout __m512, _ high: inout __m512) {
                low = _mm512_max_ps(_mm512_add_ps(low, bias0), floor)
                high = _mm512_max_ps(_mm512_add_ps(high, bias1), floor)
            }
            epilogue(&c00, &c01); epilogue(&c10, &c11); epilogue(&c20, &c21); epilogue(&c30, &c31)
            epilogue(&c40, &c41); epilogue(&c50, &c51); epilogue(&c60, &c61); epilogue(&c70, &c71)
            epilogue(&c80, &c81); epilogue(&c90, &c91); epilogue(&ca0, &ca1); epilogue(&cb0, &cb1)
        }
        store.store(0, c00, c01); store.store(1, c10, c11); store.store(2, c20, c21); store.store(3, c30, c31)
        store.store(4, c40, c41); store.store(5, c50, c51); store.store(6, c60, c61); store.store(7, c70, c71)
        store.store(8, c80, c81); store.store(9, c90, c91); store.store(10, ca0, ca1); store.store(11, cb0, cb1)
    }
}

/// Loads and stores the rows of one tile of C under the masks of its valid columns.
private struct TileMasks {
    /// Columns 0..<16 and 16..<32 of the tile that exist in C.
    let low: __mmask16
    let high: __mmask16
    let rows: Int
    let c: UnsafeMutablePointer<Float>
    let ldc: Int

    @inline(__always)
    init(columns: Int, rows: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        low = columns >= 16 ? 0xFFFF : __mmask16(truncatingIfNeeded: (1 << columns) - 1)
        high = columns >= 32 ? 0xFFFF : columns <= 16 ? 0 : __mmask16(truncatingIfNeeded: (1 << (columns - 16)) - 1)
        (self.rows, self.c, self.ldc) = (rows, c, ldc)
    }

    @inline(__always)
    func load(_ row: Int) -> (__m512, __m512) {
        guard row < rows else { return (_mm512_setzero_ps(), _mm512_setzero_ps()) }
        let source = c + row * ldc
        return (_mm512_maskz_loadu_ps(low, source), _mm512_maskz_loadu_ps(high, source + 16))
    }

    @inline(__always)
    func store(_ row: Int, _ first: __m512, _ second: __m512) {
        guard row < rows else { return }
        let target = c + row * ldc
        _mm512_mask_storeu_ps(target, low, first)
        _mm512_mask_storeu_ps(target + 16, high, second)
    }
}
#endif
