import Foundation
import Testing
import VLMCLIP
import VLMImage
import VLMLanguage
@testable import VLMReasoning

/// Locations of test inputs, all derived from this file's path.
enum TestPaths {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let fixtures = testsDirectory.appendingPathComponent("Fixtures")
    static let packageRoot = testsDirectory.deletingLastPathComponent().deletingLastPathComponent()
    static let shared = packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    static let stories = shared.appendingPathComponent("models/stories260K.gguf")
    static let images = shared.appendingPathComponent("data/images")
    /// The tiny random-initialised open_clip models committed by the CLIP tests.
    static func clip(_ name: String) -> URL {
        packageRoot.appendingPathComponent("Tests/VLMCLIPTests/Fixtures").appendingPathComponent(name)
    }

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

/// The description of the error `load` throws, or "loaded" when it throws none (bad-file tests match
/// the key or tensor the message names).
func loadError(_ load: () throws -> Any) -> String {
    do { _ = try load(); return "loaded" } catch { return String(describing: error) }
}

/// `segments` prefilled, then `count` tokens decoded greedily (argmax, one token at a time as the parity
/// fixtures' llama.cpp loops do): the position after the prefill (mtmd's n_past) and the tokens.
func greedyDecode(_ model: LanguageModel, segments: [PromptSegment], count: Int, capacity: Int) throws -> (positions: Int, tokens: [Int32]) {
    var cache = model.transformer.makeCache(capacity: capacity)
    var logits = try model.prefill(segments: segments, cache: &cache)
    let positions = cache.nextPosition
    var generated: [Int32] = []
    while generated.count < count {
        let token = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
        generated.append(token)
        logits = try model.transformer.forward([token], cache: &cache).logits
    }
    return (positions, generated)
}

/// Models shared by the tests (loading is the slow part; they are read-only after loading).
enum Models {
    /// 1024 positions, twice what stories260K was trained on: its character-level vocabulary makes the
    /// staged prompt long, and the tests check the engine's bookkeeping, not the story quality.
    static let stories = try! LanguageModel(path: TestPaths.stories, contextLength: 1024)
    static let clipTokenizer = try! CLIPTokenizer()
    static let rnTiny = try! CLIPModel(directory: TestPaths.clip("rn-tiny"))
    static let vitTiny = try! CLIPModel(directory: TestPaths.clip("vit-tiny"))

    static func preprocessing(for clip: CLIPModel) -> CLIPPreprocessing {
        try! CLIPPreprocessing(imageSize: clip.config.vision.imageSize, mean: clip.preprocess.mean, std: clip.preprocess.std)
    }

    static func image(_ name: String) -> RGBImage {
        try! PNGDecoder().decode(contentsOf: TestPaths.images.appendingPathComponent(name).path)
    }
}

/// Short stage instructions and a small label bank: stories260K's character-level vocabulary makes
/// every word several tokens.
func smallConfiguration() -> ReasoningConfiguration {
    var c = ReasoningConfiguration()
    c.stages = [
        StageSpecification(tag: "SUMMARY", instruction: "plan."),
        StageSpecification(tag: "CAPTION", instruction: "describe.", role: .evidence),
        StageSpecification(tag: "REASONING", instruction: "think.", role: .steps),
        StageSpecification(tag: "CONCLUSION", instruction: "answer.", role: .answer),
    ]
    c.labelBank = ["cat", "dog", "cup", "person"]
    c.tagsPerRegion = 2
    c.maxTokensPerStage = 20
    c.maxSteps = 3
    c.seed = 1
    return c
}

/// `smallConfiguration` drawing inline heatmaps, selecting boxes of 40 % of the mass and looking.
func lookingConfiguration(looks: Int, steps: Int, tokensPerStage: Int) -> ReasoningConfiguration {
    var c = smallConfiguration()
    c.heatmaps = .inline
    c.selection = .box(mass: 0.4)
    (c.maxLooks, c.maxSteps, c.maxTokensPerStage) = (looks, steps, tokensPerStage)
    return c
}

/// A heatmap is the photo enlarged by a whole factor, with the caption band above and the legend below.
func isHeatmapLayout(_ heatmap: RGBImage, of image: RGBImage) -> Bool {
    let zoom = heatmap.width / image.width
    return zoom >= 1 && heatmap.width == image.width * zoom && heatmap.height > image.height * zoom
}
