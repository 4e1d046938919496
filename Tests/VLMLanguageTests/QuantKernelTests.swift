// Block formats and dot products against blocks quantised, dequantised and multiplied by ggml itself
// (fixture: scripts/fixtures/make_lm_fixtures.py, `kernel_fixture`).
import Foundation
import Testing
import VLMTensor

@Suite struct QuantKernelTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let format: WeightFormat, columns: Int, rows: Int, weights: [UInt8], x: [Float], dequantized: [[Float]], dots: [Float]
        var testDescription: String { format.rawValue }
    }

    static let cases: [Case] = {
        let json = try! loadJSON(TestPaths.fixtures.appendingPathComponent("quant_kernels.json"))
        return (json["cases"] as! [[String: Any]]).map { c in
            Case(format: WeightFormat(rawValue: (c["type"] as! String).replacingOccurrences(of: "_k", with: "_K"))!,
                 columns: c["columns"] as! Int, rows: c["rows"] as! Int,
                 weights: Array(Data(base64Encoded: c["weights"] as! String)!),
                 x: (c["x"] as! [Double]).map(Float.init),
                 dequantized: (c["dequantized"] as! [[Double]]).map { $0.map(Float.init) },
                 dots: (c["dots"] as! [Double]).map(Float.init))
        }
    }()

    @Test(arguments: cases) func dequantizesLikeGGML(_ c: Case) {
        c.weights.withUnsafeBytes { raw in
            let m = QuantizedMatrix(format: c.format, rows: c.rows, columns: c.columns, data: raw.baseAddress!)
            var row = [Float](repeating: 0, count: c.columns)
            for r in 0..<c.rows {
                m.dequantizeRow(r, into: &row)
                #expect(row == c.dequantized[r], "\(c.format) row \(r)")
            }
        }
    }

    /// 32-value formats reproduce ggml's arithmetic order exactly; the K-quant kernels sum in a
    /// different order (not yet bit-identical), so they are held to float rounding.
    @Test(arguments: cases) func dotProductsMatchGGML(_ c: Case) {
        c.weights.withUnsafeBytes { raw in
            let m = QuantizedMatrix(format: c.format, rows: c.rows, columns: c.columns, data: raw.baseAddress!)
            var y = [Float](repeating: 0, count: c.rows)
            for threads in [1, 2] {
                m.multiply(c.x, batch: 1, into: &y, threads: threads)
                for r in 0..<c.rows {
                    if c.format.blockLength == 32 {
                        #expect(y[r] == c.dots[r], "\(c.format) row \(r)")
                    } else {
                        #expect(abs(y[r] - c.dots[r]) <= 1e-5 * max(1, abs(c.dots[r])), "\(c.format) row \(r): \(y[r]) vs \(c.dots[r])")
                    }
                }
            }
            // A batch (a tile of four plus a remainder) gives each row the same result as one at a time.
            let batch = 5
            var batched = [Float](repeating: 0, count: batch * c.rows)
            m.multiply(Array((0..<batch).map { _ in c.x }.joined()), batch: batch, into: &batched, threads: 2)
            for b in 0..<batch { #expect(Array(batched[(b * c.rows)..<((b + 1) * c.rows)]) == y, "batch row \(b)") }
        }
    }
}
