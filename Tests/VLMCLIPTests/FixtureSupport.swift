import Foundation
import VLMTensor

/// Locations of the committed parity fixtures (made by scripts/fixtures/make_clip_fixtures.py).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static func model(_ name: String) -> URL { directory.appendingPathComponent(name) }

    /// Little-endian float32 file → [Float].
    static func floats(_ url: URL) throws -> [Float] {
        let data = try Data(contentsOf: url)
        return data.withUnsafeBytes { raw in (0..<data.count / 4).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
    }
}

/// open_clip's outputs for one fixture model.
struct ModelReference: Decodable {
    let image_shape: [Int]
    let texts: [String]
    let tokens: [[Int32]]
    let image_embeddings: [[Float]]
    let text_embeddings: [[Float]]
    let logit_scale: Float
    let logits: [[Float]]
    let dense_grid: [Int]
    let dense_features: [[[Float]]]
    let classifier_classnames: [String]
    let classifier: [[Float]]

    static func load(_ name: String) throws -> ModelReference {
        try JSONDecoder().decode(ModelReference.self, from: Data(contentsOf: Fixtures.model(name).appendingPathComponent("reference.json")))
    }
}

func cosine(_ a: [Float], _ b: [Float]) -> Double {
    var (ab, aa, bb) = (0.0, 0.0, 0.0)
    for i in a.indices { ab += Double(a[i] * b[i]); aa += Double(a[i] * a[i]); bb += Double(b[i] * b[i]) }
    return ab / (aa.squareRoot() * bb.squareRoot())
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "lengths \(a.count) and \(b.count)")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}
