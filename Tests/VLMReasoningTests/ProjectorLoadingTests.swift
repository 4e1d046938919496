import Foundation
import Testing
import VLMImage
import VLMLanguage
import VLMTensor
@testable import VLMReasoning

/// A projector file is read once: its type and its weights come from the same bytes.
@Suite struct ProjectorLoadingTests {
    /// An idefics3 file is opened, then its path is replaced by a gemma3 file (a re-download over it): the
    /// projector built from the opened file is still the idefics3 one, image tokens and all, where a loader
    /// that opened the path again for the weights would read the gemma3 file (and fail, or mix the two).
    @Test func aProjectorIsBuiltFromTheFileOpenedNotFromItsPathAgain() throws {
        let files = FileManager.default
        let directory = files.temporaryDirectory.appendingPathComponent("projector-loading-\(UUID().uuidString)")
        try files.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? files.removeItem(at: directory) }
        let path = directory.appendingPathComponent("mmproj.gguf"), download = directory.appendingPathComponent("download.gguf")
        try files.copyItem(at: Idefics3Reference.mmproj, to: path)
        let opened = try GGUFFile(url: path)
        try files.copyItem(at: Gemma3ProjectorTests.directory.appendingPathComponent("tiny-mmproj.gguf"), to: download)
        #expect(rename(download.path, path.path) == 0)
        #expect(try MultimodalProjectors.load(url: path) is Gemma3Projector)

        let projector = try MultimodalProjectors.load(gguf: opened)
        #expect(projector is Idefics3Projector)
        let pixels = (0..<48 * 40 * 3).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let image = try RGBImage(width: 48, height: 40, pixels: pixels)
        let ours = try embeddings(projector.imageTokens(for: image, compute: ComputeContext(threads: 1)))
        let original = try embeddings(Idefics3Models.projector.imageTokens(for: image, compute: ComputeContext(threads: 1)))
        #expect(!ours.isEmpty && ours == original)
    }

    /// The token limits reach a Qwen2-VL projector built from an opened file.
    @Test func tokenLimitsReachAProjectorBuiltFromAnOpenedFile() throws {
        let opened = try GGUFFile(url: Qwen2VLReference.directory.appendingPathComponent("tiny-mmproj.gguf"))
        let projector = try #require(try MultimodalProjectors.load(gguf: opened, tokenLimits: 8...32) as? Qwen2VLProjector)
        #expect(projector.tokenLimits == 8...32)
    }

    private func embeddings(_ tokens: ImageTokens) -> [Float] {
        tokens.chunks.flatMap { chunk -> [Float] in
            if case let .embeddings(values, _) = chunk { return values }
            return []
        }
    }
}
