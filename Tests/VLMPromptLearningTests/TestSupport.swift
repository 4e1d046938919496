import Foundation
import VLMCLIP
@testable import VLMPromptLearning

enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    /// The tiny open_clip models committed for VLMCLIP's parity tests.
    static func clipModel(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("VLMCLIPTests/Fixtures").appendingPathComponent(name)
    }
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let shared = packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
}

/// Models and the tokenizer are loaded once per test process.
enum Shared {
    static let tokenizer = try! CLIPTokenizer()
    static let rnTiny = try! CLIPModel(directory: Fixtures.clipModel("rn-tiny"))
    static let vitTiny = try! CLIPModel(directory: Fixtures.clipModel("vit-tiny"))
    static func model(_ name: String) -> CLIPModel { name == "rn-tiny" ? rnTiny : vitTiny }
}

func maxRelativeError(_ a: [Float], _ b: [Double]) -> Double {
    let scale = b.map(abs).max() ?? 1
    return zip(a, b).map { abs(Double($0) - $1) }.max()! / max(scale, 1e-12)
}
