// A weight matrix kept in its stored (possibly quantised) format, multiplied without dequantising it.
import COpenBLAS
import Dispatch
import Synchronization

/// A `rows x columns` row-major weight matrix whose bytes live elsewhere (typically a memory-mapped
/// GGUF file). The owner of the bytes must outlive the matrix.
///
/// `@unchecked Sendable`: the matrix only reads its bytes, which nobody writes after load.
public struct QuantizedMatrix: @unchecked Sendable {
    public let format: WeightFormat
    public let rows: Int
    public let columns: Int
    public let data: UnsafeRawPointer
    public let rowBytes: Int
    /// Rows are summed in the order of ggml's x86 repacked ("CPU_REPACK") kernels, which llama.cpp
    /// uses instead of `ggml_vec_dot_*` for q4_K matrices with a multiple of 8 rows.
    public let repackedOrder: Bool

    /// The integer kernels this build runs and the CPU's vector extensions (benchmarks print it).
    /// AVX-512 VNNI changes only the integer instructions (the sums are exact either way); it runs the
    /// prefill tiles of the formats that have a VNNI kernel, the AVX2 kernels the rest.
    public static var kernelVariant: String {
        var kernels = activationsNeedSplitQuants ? "portable Swift SIMD (Int16 products)"
            : "x86-64 AVX2 (vpmaddubsw + vpmaddwd, F16C scales), ggml x86 summation order"
        if let vnni = BlockDot.vnniVariant { kernels += "; " + vnni }
        return kernels + "; CPU: " + (CPUFeatures.available.isEmpty ? "no x86 extensions" : CPUFeatures.available.joined(separator: " "))
    }

    /// `data` must hold `rows * format.rowBytes(columns:)` bytes; `columns` must be a whole number of blocks.
    public init(format: WeightFormat, rows: Int, columns: Int, data: UnsafeRawPointer) {
        precondition(columns % format.blockLength == 0, "row length \(columns) is not a whole number of \(format) blocks")
        self.format = format
        self.rows = rows
        self.columns = columns
        self.data = data
        self.rowBytes = format.rowBytes(columns: columns)!
        self.repackedOrder = format == .q4_K && rows % 8 == 0
    }

    /// Row `r` as Float values (an embedding look-up).
    public func dequantizeRow(_ r: Int, into y: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "row \(r) outside 0..<\(rows)")
        Dequantize.row(format, data + r * rowBytes, into: y, columns: columns)
    }

    /// `y[b][r] = sum_c W[r][c] * x[b][c]` for `batch` input rows `x` (batch x columns, row-major),
    /// writing `y` (batch x rows). Output rows are split over the context's threads.
    public func multiply(_ x: UnsafePointer<Float>, batch: Int, into y: UnsafeMutablePointer<Float>, compute: ComputeContext) {
        if format == .f32 && batch > 1 {
            // Prefill with F32 weights: one BLAS call (Y = X * W^T).
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(batch), Int32(rows), Int32(columns),
                        1, x, Int32(columns), data.assumingMemoryBound(to: Float.self), Int32(columns), 0, y, Int32(rows))
            return
        }
        Self.multiply([(self, y)], x, batch: batch, compute: compute)
    }

    /// Several matrices of one input (e.g. the query, key and value projections): the activations are
    /// quantised once per partner format and all rows are shared out in one parallel pass, so a decoded
    /// token pays one hand-off to the workers per group instead of one per matrix. Each output row is
    /// computed exactly as `multiply` computes it alone.
    public static func multiply(_ products: [(matrix: QuantizedMatrix, output: UnsafeMutablePointer<Float>)],
                                _ x: UnsafePointer<Float>, batch: Int, compute: ComputeContext) {
        guard let first = products.first else { return }
        let columns = first.matrix.columns
        precondition(products.allSatisfy { $0.matrix.columns == columns }, "matrices of one input differ in width")
        guard products.allSatisfy({ $0.matrix.format != .f32 || batch == 1 }),
              products.allSatisfy({ $0.matrix.format.activationPartner == first.matrix.format.activationPartner }) else {
            for p in products { p.matrix.multiply(x, batch: batch, into: p.output, compute: compute) }
            return
        }
        let activations = QuantizedActivation(UnsafeBufferPointer(start: x, count: batch * columns), for: first.matrix.format,
                                              compute: compute)
        activations.withViews(rows: batch) { views in
            // More chunks than threads, handed out dynamically, so a core that is busy elsewhere
            // does not hold everyone up.
            var chunks: [(product: Int, rows: Range<Int>)] = []
            for (i, p) in products.enumerated() {
                let rows = p.matrix.rows
                let count = max(1, min(compute.threads * 4, rows / 16)), chunkRows = (rows + count - 1) / count
                for start in stride(from: 0, to: rows, by: chunkRows) { chunks.append((i, start..<min(rows, start + chunkRows))) }
            }
            let views = UnsafeSendableBuffer(views), jobs = UnsafeSendableBuffer(chunks)
            let targets = UnsafeSendableBuffer(products.map { ($0.matrix, SendablePointer($0.output)) })
            compute.parallelFor(jobs.count, parts: jobs.count) { part in
                for job in part {
                    let (matrix, output) = targets[jobs[job].product]
                    matrix.multiplyRows(jobs[job].rows, views, into: output.pointer)
                }
            }
        }
    }

    /// Output rows `rows` of the product with already-quantised activations.
    ///
    /// A single activation row (decoding) takes the weight rows one at a time, one sequential stream
    /// through memory. Interleaving two rows, as this did before, decoded at about half the speed on
    /// the benchmark machine (perf put the time on the loads of the second row's blocks).
    private func multiplyRows(_ rows: Range<Int>, _ views: UnsafeSendableBuffer<ActivationView>, into output: UnsafeMutablePointer<Float>) {
        let (start, end) = (rows.lowerBound, rows.upperBound)
        if views.count == 1 {
            for r in start..<end {
                output[r] = BlockDot.dot(format, row: data + r * rowBytes, views[0], columns: columns, repacked: repackedOrder)
            }
            return
        }
        let matrixRows = self.rows
        views.items.withUnsafeBufferPointer { viewBuffer in
            var r = start
            while r + 3 < end {
                let row = data + r * rowBytes
                BlockDot.dotBatchQuad(format, (row, row + rowBytes, row + 2 * rowBytes, row + 3 * rowBytes),
                                      viewBuffer, columns: columns, repacked: repackedOrder) { i, b, value in
                    output[b * matrixRows + r + i] = value
                }
                r += 4
            }
            while r + 1 < end {
                BlockDot.dotBatchPair(format, data + r * rowBytes, data + (r + 1) * rowBytes,
                                      viewBuffer, columns: columns, repacked: repackedOrder) { i, b, value in
                    output[b * matrixRows + r + i] = value
                }
                r += 2
            }
            if r < end {
                BlockDot.dotBatch(format, row: data + r * rowBytes, viewBuffer,
                                  columns: columns, repacked: repackedOrder) { output[$0 * matrixRows + r] = $1 }
            }
        }
    }
}

/// Raw pointers handed to concurrent workers that write disjoint ranges.
struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}

struct UnsafeSendableBuffer<T>: @unchecked Sendable {
    let items: [T]
    init(_ items: [T]) { self.items = items }
    var count: Int { items.count }
    subscript(i: Int) -> T { items[i] }
}

