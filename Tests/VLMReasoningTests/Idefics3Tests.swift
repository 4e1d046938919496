import Foundation
import Testing
import VLMImage
import VLMLanguage
@testable import VLMReasoning
import VLMTensor

/// llama.cpp's libmtmd on a random-initialised idefics3 mmproj and language model
/// (scripts/fixtures/make_idefics3_fixtures.py).
struct Idefics3Reference: Decodable {
    /// A chunk as mtmd_tokenize makes it: text token ids, or an image chunk's token count (and, in the
    /// encodings, its embeddings from mtmd_encode_chunk).
    struct Chunk: Decodable {
        let text: [Int32]?
        let image: Int?
        let embeddings: [Float]?
    }
    struct Encoding: Decodable { let image: String; let size: [Int]; let chunks: [Chunk] }
    struct Run: Decodable { let prompt: String; let image: String; let chunks: [Chunk]; let positions: Int; let greedy_ids: [Int32] }
    let marker: String
    let encodings: [Encoding]
    let greedy: [Run]
    /// Encodings by a file without clip.vision.preproc_image_size (mtmd's older slicing).
    let untiled: [Encoding]

    static let directory = TestPaths.fixtures.appendingPathComponent("idefics3")
    static let mmproj = directory.appendingPathComponent("tiny-mmproj.gguf")
    static let load = try! JSONDecoder().decode(Idefics3Reference.self, from: Data(contentsOf: directory.appendingPathComponent("reference.json")))
}

enum Idefics3Models {
    static let projector = try! Idefics3Projector(url: Idefics3Reference.mmproj)
    static let languageModel = try! LanguageModel(path: Idefics3Reference.directory.appendingPathComponent("tiny-lm.gguf"),
                                                  contextLength: 512)
}

/// Our segments of one chunk list, as kinds comparable with mtmd's: consecutive text merged (mtmd appends
/// text to the previous text chunk), images by token count.
private enum Piece: Equatable {
    case text([Int32]), image(Int)

    static func of(_ segments: [PromptSegment]) -> [Piece] {
        var pieces: [Piece] = []
        for segment in segments {
            switch segment {
            case let .tokens(ids):
                if case let .text(previous)? = pieces.last { pieces[pieces.count - 1] = .text(previous + ids) } else { pieces.append(.text(ids)) }
            case let .embeddings(_, count, _): pieces.append(.image(count))
            }
        }
        return pieces
    }

    static func of(_ chunks: [Idefics3Reference.Chunk]) -> [Piece] {
        chunks.map { chunk in chunk.text.map(Piece.text) ?? .image(chunk.image!) }
    }
}

/// ||ours - theirs|| / ||theirs||.
private func relativeError(_ ours: [Float], _ theirs: [Float]) -> Float {
    var difference: Float = 0, norm: Float = 0
    for (x, y) in zip(ours, theirs) { difference += (x - y) * (x - y); norm += y * y }
    return (difference / norm).squareRoot()
}

@Suite struct Idefics3ProjectorTests {
    @Test func readsTheHeader() throws {
        let p = Idefics3Models.projector, hp = p.hyperparameters
        #expect(p.projectorType == "idefics3" && p.outputWidth == 64)
        #expect(hp.imageSize == 32 && hp.patchSize == 8 && hp.width == 64 && hp.blockCount == 2 && hp.blocksRun == 2)
        #expect(p.scaleFactor == 2 && p.tokensPerView == 4 && p.preprocessing.longestEdge == 96)
        let loaded = try MultimodalProjectors.load(url: Idefics3Reference.mmproj)
        #expect(loaded is Idefics3Projector && MultimodalProjectors.supportedTypes.contains("idefics3"))
    }

    /// transformers' pixel_shuffle on a 4x4 grid of one-value patches numbered row-major, scale 2: each
    /// output token holds its 2x2 block, top row first.
    @Test func pixelShuffleGathersBlocksRowMajor() {
        let out = Idefics3Projector.pixelShuffle((0..<16).map(Float.init), side: 4, width: 1, scale: 2)
        #expect(out == [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15])
        let wide = Idefics3Projector.pixelShuffle((0..<8).map(Float.init), side: 2, width: 2, scale: 2)
        #expect(wide == (0..<8).map(Float.init))
    }

    /// Tiling as mtmd computes it: chelsea (451x300) -> 96x64 -> 3 columns x 2 rows; a square -> 3x3.
    @Test func tilesLikeMtmd() throws {
        let p = Idefics3Models.projector.preprocessing
        #expect(p.resizedSize(width: 451, height: 300) == (96, 64))
        #expect(p.resizedSize(width: 300, height: 451) == (64, 96))
        #expect(p.resizedSize(width: 512, height: 512) == (96, 96))
        #expect(p.grid(width: 451, height: 300) == (rows: 2, columns: 3))
        // 1000x20: 96 / 50 = 1.92 -> 1 -> rounded up to even 2.
        #expect(p.resizedSize(width: 1000, height: 20) == (96, 2))
        #expect(throws: MMProjError.self) { try p.views(RGBImage(width: 2000, height: 1, fill: (1, 2, 3))) }
    }

    /// Each image's chunks as mtmd makes them for a bare media marker: the same marker token ids, the same
    /// number of views of the same token counts, and each view's embeddings within 1e-5 relative (they are
    /// bit-identical today: F16 patch convolution, Q8_0 integer dots and ggml's GELU table are reproduced).
    @Test func chunksAndEmbeddingsMatchLlamaCpp() throws {
        try Self.check(Idefics3Reference.load.encodings, projector: Idefics3Models.projector)
    }

    /// A file without clip.vision.preproc_image_size: coins.png (384x303) rounds to a 3x2-tile canvas,
    /// fitted with black bars, and a bicubic global view; llama.cpp's chunks and embeddings.
    @Test func untiledFileSlicesLikeMtmd() throws {
        let projector = try Idefics3Projector(url: Idefics3Reference.directory.appendingPathComponent("untiled-mmproj.gguf"))
        #expect(projector.preprocessing.longestEdge == nil)
        #expect(projector.preprocessing.grid(width: 384, height: 303) == (rows: 2, columns: 3))
        try Self.check(Idefics3Reference.load.untiled, projector: projector)
    }

    static func check(_ encodings: [Idefics3Reference.Encoding], projector: any MultimodalProjector) throws {
        let model = Idefics3Models.languageModel
        for reference in encodings {
            let image = try LLaVAModels.image(reference.image)
            let ours = try projector.imageTokens(for: image, compute: ComputeContext())
            // mtmd's first text chunk starts with the prompt's BOS (the marker is the whole prompt).
            var expected = Piece.of(reference.chunks)
            if case let .text(ids) = expected[0], ids.first == model.tokenizer.vocabulary.bos {
                expected[0] = .text(Array(ids.dropFirst()))
            }
            #expect(Piece.of(ours.segments(tokenizer: model.tokenizer)) == expected, "\(reference.image)")
            let theirs = reference.chunks.compactMap(\.embeddings)
            let mine = ours.chunks.compactMap { chunk -> [Float]? in
                if case let .embeddings(values, _) = chunk { return values }
                return nil
            }
            #expect(mine.count == theirs.count)
            var worst: Float = 0
            for (a, b) in zip(mine, theirs) {
                #expect(a.count == b.count)
                worst = max(worst, relativeError(a, b))
            }
            print("\(projector.projectorType) \(reference.image): \(mine.count) views, worst relative error \(worst)")
            #expect(worst <= 1e-5, "\(reference.image)")
        }
    }

    @Test func rejectsBadFiles() throws {
        func error(_ name: String) -> String {
            loadError { try Idefics3Projector(url: Idefics3Reference.directory.appendingPathComponent(name)) }
        }
        #expect(error("bad-missing-fc.gguf").contains("'mm.model.fc.weight': missing"))
        #expect(error("bad-scale-factor.gguf").contains("'clip.vision.projector.scale_factor': 3 must"))
        // A LLaVA file is not an idefics3 one.
        #expect(error("../llava/tiny-mmproj.gguf").contains("projector type 'mlp' is not 'idefics3'"))
        // A tower that loads but projects to 32 values: not for a 64-wide language model.
        let narrow = try Idefics3Projector(url: Idefics3Reference.directory.appendingPathComponent("bad-width-32.gguf"))
        #expect(throws: MMProjError.widthMismatch(projector: 32, languageModel: 64)) {
            try narrow.checkCompatible(languageModelWidth: Idefics3Models.languageModel.hyperparameters.embeddingLength)
        }
        // An unsupported type is named, with the supported ones.
        let other = LLaVAReference.directory.appendingPathComponent("bad-projector-type.gguf")
        #expect(throws: MMProjError.notSupported("projector type 'ldp' (supported: mlp, idefics3, gemma3, qwen2vl_merger, qwen2.5vl_merger)")) {
            _ = try MultimodalProjectors.load(url: other)
        }
    }
}

@Suite struct Idefics3LanguageParityTests {
    /// "text <__media__> text" as mtmd tokenizes it (text pieces with BOS before the first, the image's
    /// chunks in place of the marker), prefilled and decoded greedily: llama.cpp's token ids.
    @Test func greedyTokensMatchLlamaCpp() throws {
        try Self.check(Idefics3Reference.load.greedy, marker: Idefics3Reference.load.marker,
                       model: Idefics3Models.languageModel, projector: Idefics3Models.projector)
    }

    /// The segments of `run`'s prompt: its text pieces around `image`'s chunks.
    static func segments(_ run: Idefics3Reference.Run, marker: String, image: ImageTokens, model: LanguageModel) throws -> [PromptSegment] {
        let pieces = run.prompt.components(separatedBy: marker)
        try #require(pieces.count == 2)
        var segments: [PromptSegment] = [.tokens(model.tokenizer.encode(pieces[0], addSpecial: true, parseSpecial: true))]
        segments += image.segments(tokenizer: model.tokenizer)
        segments.append(.tokens(model.tokenizer.encode(pieces[1], addSpecial: false, parseSpecial: true)))
        #expect(Piece.of(segments) == Piece.of(run.chunks), "\(run.prompt)")
        return segments
    }

    static func check(_ runs: [Idefics3Reference.Run], marker: String, model: LanguageModel, projector: any MultimodalProjector) throws {
        try projector.checkCompatible(languageModelWidth: model.hyperparameters.embeddingLength)
        for run in runs {
            let image = try projector.imageTokens(for: LLaVAModels.image(run.image), compute: ComputeContext())
            let segments = try segments(run, marker: marker, image: image, model: model)
            let (positions, generated) = try greedyDecode(model, segments: segments, count: run.greedy_ids.count, capacity: 512)
            #expect(positions == run.positions)
            print("\(projector.projectorType) greedy \(run.prompt): \(generated == run.greedy_ids ? "identical" : "DIFFERENT") (\(generated.count) tokens)")
            #expect(generated == run.greedy_ids, "\(run.prompt)")
        }
    }
}
