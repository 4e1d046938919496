import Foundation
import VLMCLIP
@testable import VLMPromptLearning

enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    /// Tiny random open_clip models (scripts/fixtures/make_prompt_fixtures.py).
    static func clipModel(_ name: String) -> URL { directory.appendingPathComponent(name) }
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let shared = packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
}

/// Models and the tokenizer are loaded once per test process.
enum Shared {
    static let tokenizer = try! CLIPTokenizer()
    /// Width-8 text towers: QuickGELU (OpenAI CLIP's activation) and exact GELU.
    static let quickGELU = try! CLIPModel(directory: Fixtures.clipModel("text-quickgelu"))
    static let gelu = try! CLIPModel(directory: Fixtures.clipModel("text-gelu"))
    static func model(_ name: String) -> CLIPModel { name == "text-quickgelu" ? quickGELU : gelu }
}

func maxRelativeError(_ a: [Float], _ b: [Double]) -> Double {
    let scale = b.map(abs).max() ?? 1
    return zip(a, b).map { abs(Double($0) - $1) }.max()! / max(scale, 1e-12)
}
