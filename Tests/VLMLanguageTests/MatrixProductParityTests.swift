// Whole matrix products against ggml's CPU backend running a `ggml_mul_mat` graph node, bit for bit:
// the kernel ggml picks then depends on the batch size as it does in a llama.cpp prefill (the tiled
// K-quant matmul from 8 activation rows, `vec_dot` below). Fixture: scripts/fixtures/make_tiled_fixtures.py.
import Foundation
import Testing
import VLMTensor

struct MatrixProductCase: CustomTestStringConvertible, Sendable {
    let format: WeightFormat, label: String, rows: Int, columns: Int, batch: Int
    let weights: [UInt8], x: [Float], y: [UInt32]
    var testDescription: String { "\(format.rawValue) \(label)" }

    static let all: [MatrixProductCase] = {
        let json = try! loadJSON(TestPaths.fixtures.appendingPathComponent("ggml_mul_mat.json"))
        return (json["cases"] as! [[String: Any]]).map { c in
            MatrixProductCase(format: WeightFormat(rawValue: c["type"] as! String)!, label: c["label"] as! String,
                              rows: c["rows"] as! Int, columns: c["columns"] as! Int, batch: c["batch"] as! Int,
                              weights: KernelCase.bytes(c["weights"]), x: KernelCase.floats(c["x"]),
                              y: (c["y"] as! [Int]).map(UInt32.init))
        }
    }()
}

@Suite struct MatrixProductParityTests {
    @Test func coversBothSidesOfTheTiledBatchFloor() {
        let batches = MatrixProductCase.all.map(\.batch)
        #expect(batches.contains { $0 < 8 } && batches.contains { $0 >= 8 })
    }

    @Test(arguments: MatrixProductCase.all) func multiplyMatchesGGMLMulMat(_ c: MatrixProductCase) {
        var y = [Float](repeating: .nan, count: c.batch * c.rows)
        c.weights.withUnsafeBytes { w in
            let matrix = QuantizedMatrix(format: c.format, rows: c.rows, columns: c.columns, data: w.baseAddress!)
            matrix.multiply(c.x, batch: c.batch, into: &y, compute: ComputeContext(threads: 2))
        }
        let got = y.map(\.bitPattern)
        #expect(got == c.y, "\(firstDifference(got, c.y))")
    }
}
