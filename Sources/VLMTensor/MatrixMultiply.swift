import COpenBLAS

/// Row-major matrix products over OpenBLAS. Every heavy operation in the models (linear layers,
/// convolutions after im2col, attention) ends up here.
public enum MatrixMultiply {
    /// The kernel family OpenBLAS chose for this CPU at run time (e.g. "Haswell", "SkylakeX"), for reports.
    public static var kernelName: String { String(cString: openblas_get_corename()) }

    /// C[m×n] = alpha · op(A) · op(B) + beta · C, all row-major.
    /// op(A) is m×k (A is k×m when `transposeA`), op(B) is k×n (B is n×k when `transposeB`).
    /// `lda`, `ldb`, `ldc` are the row strides of the stored matrices, which lets callers address a
    /// column block (one attention head) inside a wider row without copying.
    @inline(__always)
    public static func gemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y[m] = alpha · A[m×n] · x[n] + beta · y (A row-major with row stride `lda`).
    @inline(__always)
    public static func gemv(
        m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        guard m > 0 else { return }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda), x, 1, beta, y, 1)
    }
}
