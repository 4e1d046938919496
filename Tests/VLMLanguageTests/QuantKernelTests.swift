// Quantised kernels against ggml's own CPU backend, bit for bit (Float bit patterns, not tolerances).
// Fixture: scripts/fixtures/make_quant_fixtures.py calls llama-cpp-python's libggml through ctypes.
import Foundation
import Testing
@testable import VLMTensor
import VLMLanguage

struct KernelCase: CustomTestStringConvertible, Sendable {
    struct Activation: Sendable { let x: [Float], partner: String, bytes: [UInt8] }
    let format: WeightFormat, label: String, columns: Int, rows: Int
    let weights: [UInt8], dequantized: [Float], activations: [Activation]
    /// dots[activation][row]: `vec_dot` bit patterns; repacked: the same through `ggml_gemv_q4_K_8x8_q8_K`.
    let dots: [[UInt32]], repacked: [[UInt32]]?
    var testDescription: String { "\(format.rawValue) \(label)" }

    static let all: [KernelCase] = {
        let json = try! loadJSON(TestPaths.fixtures.appendingPathComponent("ggml_kernels.json"))
        return (json["cases"] as! [[String: Any]]).map { c in
            KernelCase(
                format: WeightFormat(rawValue: c["type"] as! String)!, label: c["label"] as! String,
                columns: c["columns"] as! Int, rows: c["rows"] as! Int, weights: bytes(c["weights"]),
                dequantized: floats(c["dequantized"]),
                activations: (c["activations"] as! [[String: Any]]).map {
                    Activation(x: floats($0["x"]), partner: $0["format"] as! String, bytes: bytes($0["bytes"]))
                },
                dots: (c["dots"] as! [[Int]]).map { $0.map(UInt32.init) },
                repacked: (c["repacked"] as? [[Int]])?.map { $0.map(UInt32.init) })
        }
    }()

    static func bytes(_ v: Any?) -> [UInt8] { Array(Data(base64Encoded: v as! String)!) }
    static func floats(_ v: Any?) -> [Float] {
        bytes(v).withUnsafeBytes { raw in (0..<raw.count / 4).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) } }
    }

    func withMatrix<R>(_ body: (QuantizedMatrix) -> R) -> R {
        weights.withUnsafeBytes { body(QuantizedMatrix(format: format, rows: rows, columns: columns, data: $0.baseAddress!)) }
    }
}

/// "" when equal, else where the two first differ (arrays of bit patterns are too long to print whole).
func firstDifference<T: Equatable>(_ a: [T], _ b: [T]) -> String {
    guard a != b else { return "" }
    guard a.count == b.count else { return "lengths \(a.count) vs \(b.count)" }
    let i = a.indices.first { a[$0] != b[$0] }!
    return "\(zip(a, b).filter { $0 != $1 }.count) differ, first at \(i): \(a[i]) vs \(b[i])"
}

/// The bytes ggml stores for an activation row converted to Q8_0, Q8_1 or Q8_K.
func serialized(_ a: QuantizedActivation, as partner: String) -> [UInt8] {
    var out: [UInt8] = []
    func append<T>(_ v: T) { withUnsafeBytes(of: v) { out += $0 } }
    switch partner {
    case "q8_K":
        for b in 0..<a.scales.count {
            append(a.scales[b])
            out += a.quants[(b * 256)..<((b + 1) * 256)].map { UInt8(bitPattern: $0) }
            for g in 0..<16 { append(Int16(a.groupSums[b * 16 + g])) }
        }
    default:
        for b in 0..<a.scales.count {
            append(floatToHalf(a.scales[b]))
            if partner == "q8_1" { append(floatToHalf(a.blockSums[b])) }
            out += a.quants[(b * 32)..<((b + 1) * 32)].map { UInt8(bitPattern: $0) }
        }
    }
    return out
}

@Suite struct QuantKernelTests {
    @Test(arguments: KernelCase.all) func dequantizesBitForBit(_ c: KernelCase) {
        c.withMatrix { m in
            var row = [Float](repeating: 0, count: c.columns)
            for r in 0..<c.rows {
                m.dequantizeRow(r, into: &row)
                let expected = c.dequantized[(r * c.columns)..<((r + 1) * c.columns)]
                #expect(firstDifference(row.map(\.bitPattern), expected.map(\.bitPattern)) == "", "row \(r)")
            }
        }
    }

    @Test(arguments: KernelCase.all) func quantizesActivationsLikeGGML(_ c: KernelCase) {
        for (i, a) in c.activations.enumerated() {
            let ours = a.x.withUnsafeBufferPointer { QuantizedActivation($0, for: c.format) }
            #expect(firstDifference(serialized(ours, as: a.partner), a.bytes) == "", "activation \(i) as \(a.partner)")
        }
    }

    /// Every row against every activation, in `ggml_vec_dot_*` order.
    @Test(arguments: KernelCase.all) func vecDotBitForBit(_ c: KernelCase) {
        c.withMatrix { m in
            for (i, a) in c.activations.enumerated() {
                let q = a.x.withUnsafeBufferPointer { QuantizedActivation($0, for: c.format) }
                let ours = q.withView { view in
                    (0..<c.rows).map { BlockDot.dot(c.format, row: m.data + $0 * m.rowBytes, view, columns: c.columns).bitPattern }
                }
                #expect(ours == c.dots[i], "activation \(i)")
            }
        }
    }

    /// The matrix product, one activation or a batch, on 1 and 2 threads: the order llama.cpp's
    /// matrix multiplication uses (repacked for q4_K with 8 rows, `vec_dot` otherwise).
    @Test(arguments: KernelCase.all) func matrixProductBitForBit(_ c: KernelCase) throws {
        let expected = c.format == .q4_K ? try #require(c.repacked, "fixture lacks the repacked q4_K reference") : c.dots
        c.withMatrix { m in
            for threads in [1, 2] {
                for (i, a) in c.activations.enumerated() {
                    var y = [Float](repeating: 0, count: c.rows)
                    m.multiply(a.x, batch: 1, into: &y, compute: ComputeContext(threads: threads))
                    #expect(y.map(\.bitPattern) == expected[i], "activation \(i), \(threads) threads")
                }
                // Seven activations: a tile of four and a remainder of three in the prefill kernels.
                let order = [0, 1, 2, 2, 1, 0, 1].map { $0 % c.activations.count }
                var y = [Float](repeating: 0, count: c.rows * order.count)
                m.multiply(order.flatMap { c.activations[$0].x }, batch: order.count, into: &y, compute: ComputeContext(threads: threads))
                // Repacked q4_K sums whole groups of four batch rows in ggml's gemm order (one FMA per 64
                // values, not per super-block): only the rows after them are gemv rows (the gemm order is
                // checked against llama.cpp by the Gemma 3 parity tests).
                let gemvFrom = c.format == .q4_K ? order.count - order.count % 4 : 0
                #expect(Array(y[(gemvFrom * c.rows)...]).map(\.bitPattern) == order[gemvFrom...].flatMap { expected[$0] },
                        "batch, \(threads) threads")
            }
        }
    }
}

@Suite struct GGMLTypeNameTests {
    @Test func unsupportedTypesAreNamed() {
        let error = GGUFError.unsupportedTensorType(name: "blk.0.attn_q.weight", type: 16)
        #expect(error.description == "tensor 'blk.0.attn_q.weight' has unsupported ggml type IQ2_XXS (16)")
        #expect(GGUFError.unsupportedTensorType(name: "w", type: 77).description.hasSuffix("unknown type 77"))
    }

    /// Each supported code maps to the format of the same name (ggml.h's enum order).
    @Test func supportedCodesMatchTheirNames() {
        for (code, format) in GGMLType.formats {
            #expect(GGMLType.names[code]?.lowercased() == format.rawValue.lowercased(), "code \(code)")
        }
        #expect(Set(GGMLType.formats.values) == Set(WeightFormat.allCases))
    }
}
