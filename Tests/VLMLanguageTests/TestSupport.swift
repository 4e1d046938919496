import Foundation
import Testing

/// Locations of test inputs, all derived from this file's path.
enum TestPaths {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let fixtures = testsDirectory.appendingPathComponent("Fixtures")
    static let packageRoot = testsDirectory.deletingLastPathComponent().deletingLastPathComponent()
    static let shared = packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    static let stories = shared.appendingPathComponent("models/stories260K.gguf")

    /// SmolLM2-135M-Instruct Q4_1: `$VLMD_MODEL_CACHE/` or `<repo>/models-cache/` (scripts/get-smollm2.sh).
    static var smolLM2: URL? {
        let name = "SmolLM2-135M-Instruct.Q4_1.gguf"
        var candidates: [URL] = []
        if let dir = ProcessInfo.processInfo.environment["VLMD_MODEL_CACHE"] {
            candidates.append(URL(fileURLWithPath: dir).appendingPathComponent(name))
        }
        candidates.append(packageRoot.appendingPathComponent("models-cache").appendingPathComponent(name))
        return candidates.first { FileManager.default.fileExists(atPath: $0.path) }
    }

    static var requireModels: Bool { ProcessInfo.processInfo.environment["VLMD_REQUIRE_MODELS"] == "1" }
}

func loadJSON(_ url: URL) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
}

func int32s(_ any: Any?) -> [Int32] { (any as? [Any] ?? []).map { Int32(($0 as! NSNumber).intValue) } }
