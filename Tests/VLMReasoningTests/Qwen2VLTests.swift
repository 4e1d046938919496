import Foundation
import Testing
import VLMLanguage
@testable import VLMReasoning
import VLMTensor

/// llama.cpp's libmtmd on a random-initialised Qwen2-VL mmproj and a tiny `qwen2vl` language model
/// (scripts/fixtures/make_qwen2vl_fixtures.py).
struct Qwen2VLReference: Decodable {
    struct Encoding: Decodable {
        let image: String
        let size: [Int]
        /// The image chunk's token grid (columns x rows) and the positions it takes (max(nx, ny)).
        let nx: Int
        let ny: Int
        let n_pos: Int
        let chunks: [Idefics3Reference.Chunk]
    }
    let marker: String
    let encodings: [Encoding]
    let greedy: [Idefics3Reference.Run]
    /// Per greedy run, llama.cpp's top-two logit margin at each step.
    let margins: [[Float]]

    struct Margins: Decodable {
        struct Run: Decodable { let margins: [Float] }
        let greedy: [Run]
    }

    init(from decoder: any Decoder) throws {
        enum Keys: String, CodingKey { case marker, encodings, greedy }
        let container = try decoder.container(keyedBy: Keys.self)
        marker = try container.decode(String.self, forKey: .marker)
        encodings = try container.decode([Encoding].self, forKey: .encodings)
        greedy = try container.decode([Idefics3Reference.Run].self, forKey: .greedy)
        margins = try Margins(from: decoder).greedy.map(\.margins)
    }

    static let directory = TestPaths.fixtures.appendingPathComponent("qwen2vl")
    static let load = reference(directory)
    /// The Qwen2.5-VL mmproj's references (same language model).
    static let qwen25 = reference(TestPaths.fixtures.appendingPathComponent("qwen25vl"))
    static let languageModel = try! LanguageModel(path: directory.appendingPathComponent("tiny-lm.gguf"), contextLength: 512)

    static func reference(_ directory: URL) -> Qwen2VLReference {
        try! JSONDecoder().decode(Qwen2VLReference.self, from: Data(contentsOf: directory.appendingPathComponent("reference.json")))
    }

    /// mtmd's image tokens for `image` (its embeddings), laid out on mtmd's grid between the vision markers.
    func mtmdImageTokens(_ image: String) throws -> ImageTokens {
        let encoding = try #require(encodings.first { $0.image == image })
        let embeddings = try #require(encoding.chunks.compactMap(\.embeddings).first)
        let count = encoding.nx * encoding.ny
        return ImageTokens(chunks: [.text("<|vision_start|>"), .embeddings(embeddings, count: count), .text("<|vision_end|>")],
                           layout: EmbeddingLayout(grid: .init(rows: encoding.ny, columns: encoding.nx)))
    }
}

@Suite struct Qwen2VLLanguageTests {
    @Test func readsTheSections() {
        let hp = Qwen2VLReference.languageModel.hyperparameters
        #expect(hp.family.sectionedRope && hp.ropeSections == [2, 3, 3, 0] && hp.ropeDimensionCount == 16)
    }

    /// mtmd's image embeddings in "text <__media__> text" prompts: the image's tokens at M-RoPE grid
    /// positions, the text after it max(nx, ny) positions on; mtmd's n_past and greedy token ids.
    @Test(arguments: ["qwen2vl", "qwen25vl"]) func greedyTokensMatchLlamaCppOnMtmdEmbeddings(_ name: String) throws {
        let reference = name == "qwen2vl" ? Qwen2VLReference.load : Qwen2VLReference.qwen25, model = Qwen2VLReference.languageModel
        for run in reference.greedy {
            let segments = try Idefics3LanguageParityTests.segments(run, marker: reference.marker, image: reference.mtmdImageTokens(run.image),
                                                                    model: model)
            let (positions, generated) = try greedyDecode(model, segments: segments, count: run.greedy_ids.count, capacity: 512)
            #expect(positions == run.positions, "\(run.prompt)")
            print("qwen2vl greedy \(run.prompt): \(generated == run.greedy_ids ? "identical" : "DIFFERENT") (\(generated.count) tokens)")
            #expect(generated == run.greedy_ids, "\(run.prompt)")
        }
    }

    /// Without the grid the image's tokens count one position each: the positions and tokens leave mtmd's.
    @Test func sequentialImagePositionsDepartFromLlamaCpp() throws {
        let reference = Qwen2VLReference.load, model = Qwen2VLReference.languageModel
        let run = reference.greedy[0]
        var image = try reference.mtmdImageTokens(run.image)
        image.layout.grid = nil
        let segments = try Idefics3LanguageParityTests.segments(run, marker: reference.marker, image: image, model: model)
        let (positions, generated) = try greedyDecode(model, segments: segments, count: run.greedy_ids.count, capacity: 512)
        #expect(positions != run.positions && generated != run.greedy_ids)
    }

    /// A cache cut back to before an image forgets the image's position shift.
    @Test func truncationForgetsLaterShifts() throws {
        let reference = Qwen2VLReference.load, model = Qwen2VLReference.languageModel
        let image = try reference.mtmdImageTokens("astronaut.png")
        var cache = model.transformer.makeCache(capacity: 64)
        _ = try model.prefill(segments: [.tokens([1, 2, 3])] + image.segments(tokenizer: model.tokenizer), cache: &cache)
        #expect(cache.count == 3 + 1 + 25 + 1 && cache.nextPosition == 3 + 1 + 5 + 1)
        cache.truncate(to: 4)
        #expect(cache.nextPosition == 4)
    }
}

@Suite struct Qwen2VLProjectorTests {
    /// The fixtures' mtmd ran with image_max_tokens 32.
    static let qwen2 = try! Qwen2VLProjector(url: Qwen2VLReference.directory.appendingPathComponent("tiny-mmproj.gguf"), tokenLimits: 8...32)
    static let qwen25 = try! Qwen2VLProjector(url: TestPaths.fixtures.appendingPathComponent("qwen25vl/tiny-mmproj.gguf"), tokenLimits: 8...32)

    static func fixture(_ name: String) -> (Qwen2VLProjector, Qwen2VLReference) {
        name == "qwen2vl" ? (qwen2, Qwen2VLReference.load) : (qwen25, Qwen2VLReference.qwen25)
    }

    @Test func loadsByType() throws {
        let loaded = try MultimodalProjectors.load(url: Qwen2VLReference.directory.appendingPathComponent("tiny-mmproj.gguf"))
        #expect(loaded is Qwen2VLProjector && loaded.outputWidth == 64 && loaded.projectorType == "qwen2vl_merger")
        #expect(Self.qwen2.windowPattern == nil && Self.qwen25.windowPattern == 2 && Self.qwen25.windowSide == 4)
    }

    /// mtmd's smart size: 741x500 with at most 32 tokens of 28² -> 168x112 (6 x 4 tokens); a square -> 140x140.
    @Test func smartSizeLikeMtmd() {
        #expect(Qwen2VLProjector.smartSize(width: 741, height: 500, unit: 28, tokenLimits: 8...32) == (168, 112))
        #expect(Qwen2VLProjector.smartSize(width: 512, height: 512, unit: 28, tokenLimits: 8...32) == (140, 140))
        // Small images grow to the minimum: 20x20 -> at least 8 tokens.
        let small = Qwen2VLProjector.smartSize(width: 20, height: 20, unit: 28, tokenLimits: 8...4096)
        #expect(small.width * small.height >= 8 * 28 * 28)
    }

    /// Tall 100x300 with at most 32 tokens: smart size 84x252 (β = √(30000 / 25088); 300/β = 274.3 px -> 9
    /// units of 28, 100/β = 91.4 -> 3), the image fitted onto it whole (scale 0.84 both ways), so each token
    /// is 100/3 px square. Wide 300x100: 252x84, 9 x 3 tokens. A box maps to the one cell under it, and that
    /// cell back to the box's token.
    @Test func tokenGeometryOfTallAndWideImages() {
        let tall = Self.qwen2.tokenGeometry(width: 100, height: 300)
        #expect(tall.gridWidth == 3 && tall.gridHeight == 9 && tall.tokenRegions.count == 27)
        // x 40..<50, y 110..<120: column 1 (33.3..<66.7), row 3 (100..<133.3) -> token and cell 3·3 + 1.
        #expect(ImageTokenGeometryTests.cells(hitBy: ImageTokenGeometryTests.rect(40, 110, 10, 10), tall) == [10])
        #expect(tall.pixelBox(of: GridBox(row: 3, column: 1, rows: 1, columns: 1)) == PixelBox(x: 33, y: 100, width: 34, height: 34))

        let wide = Self.qwen2.tokenGeometry(width: 300, height: 100)
        #expect(wide.gridWidth == 9 && wide.gridHeight == 3 && wide.tokenRegions.count == 27)
        // x 210..<220, y 70..<80: column 6 (200..<233.3), row 2 (66.7..<100) -> cell 2·9 + 6.
        #expect(ImageTokenGeometryTests.cells(hitBy: ImageTokenGeometryTests.rect(210, 70, 10, 10), wide) == [24])
        #expect(wide.pixelBox(of: GridBox(row: 2, column: 6, rows: 1, columns: 1)) == PixelBox(x: 200, y: 66, width: 34, height: 34))
        #expect(wide.pixelBox(of: GridBox(row: 0, column: 0, rows: 3, columns: 9)) == PixelBox(x: 0, y: 0, width: 300, height: 100))
    }

    /// On mtmd's own grids (the fixtures' images): one region per token mtmd made, the regions tiling the
    /// image once. 741x500 is fitted 166 px wide at x 1 of its 168x112 canvas, so token column 0 is image
    /// x 0..<27·741/166.
    @Test func tokenGeometryMatchesMtmdsGrids() throws {
        for encoding in Qwen2VLReference.load.encodings {
            let (w, h) = (encoding.size[0], encoding.size[1])
            let g = Self.qwen2.tokenGeometry(width: w, height: h)
            #expect(g.gridWidth == encoding.nx && g.gridHeight == encoding.ny && g.tokenRegions.count == encoding.nx * encoding.ny)
            #expect(abs(g.tokenRegions.reduce(0) { $0 + $1.area } - Double(w * h)) < 1e-6, "\(encoding.image)")
        }
        let motorcycle = Self.qwen2.tokenGeometry(width: 741, height: 500)
        #expect(abs(motorcycle.tokenRegions[0].x1 - 27.0 * 741 / 166) < 1e-9 && motorcycle.tokenRegions[0].x0 == 0)
    }

    /// mtmd's windows on a 5x5 merged grid with 4x4 windows: a 4x4, a 4x1, a 1x4 and a 1x1 window.
    @Test func windowsTileTheGridLikeMtmd() {
        let (order, lengths) = Qwen2VLProjector.windows(.init(rows: 5, columns: 5), side: 4)
        #expect(lengths == [16, 4, 4, 1])
        #expect(Array(order.prefix(5)) == [0, 1, 2, 3, 5] && Array(order[16..<20]) == [4, 9, 14, 19] && order.last == 24)
        #expect(Set(order) == Set(0..<25))
    }

    /// Square and non-square images: mtmd's chunks (the vision markers around the tokens), grid and embeddings.
    @Test(arguments: ["qwen2vl", "qwen25vl"]) func chunksGridAndEmbeddingsMatchLlamaCpp(_ name: String) throws {
        let (projector, reference) = Self.fixture(name), model = Qwen2VLReference.languageModel
        for encoding in reference.encodings {
            let ours = try projector.imageTokens(for: LLaVAModels.image(encoding.image), compute: ComputeContext())
            #expect(ours.layout.grid == EmbeddingLayout.Grid(rows: encoding.ny, columns: encoding.nx), "\(encoding.image)")
            let texts = ours.segments(tokenizer: model.tokenizer).compactMap { segment -> [Int32]? in
                if case let .tokens(ids) = segment { return ids }
                return nil
            }
            #expect(texts == encoding.chunks.compactMap(\.text), "\(encoding.image)")
            let mine = try #require(ours.chunks.compactMap { chunk -> [Float]? in
                if case let .embeddings(values, _) = chunk { return values }
                return nil
            }.first)
            let theirs = try #require(encoding.chunks.compactMap(\.embeddings).first)
            try #require(mine.count == theirs.count, "\(encoding.image)")
            var difference: Float = 0, norm: Float = 0
            for (a, b) in zip(mine, theirs) { difference += (a - b) * (a - b); norm += b * b }
            let relative = (difference / norm).squareRoot()
            print("\(name) \(encoding.image): \(encoding.nx)x\(encoding.ny) tokens, relative error \(relative)")
            #expect(relative <= 2e-4, "\(encoding.image)")  // 1.5e-5..6e-5 today; the issue asks 1e-3
        }
    }

    /// Our projector's tokens in `run`'s prompt, greedy-decoded: the position after the prompt and the tokens.
    static func projectorGreedy(_ projector: Qwen2VLProjector, _ reference: Qwen2VLReference,
                                _ run: Idefics3Reference.Run) throws -> (positions: Int, tokens: [Int32]) {
        let model = Qwen2VLReference.languageModel
        let image = try projector.imageTokens(for: LLaVAModels.image(run.image), compute: ComputeContext())
        let segments = try Idefics3LanguageParityTests.segments(run, marker: reference.marker, image: image, model: model)
        return try greedyDecode(model, segments: segments, count: run.greedy_ids.count, capacity: 512)
    }

    /// Qwen2.5-VL on its decisive fixture (the generator chose mmproj weights whose llama.cpp runs keep the top
    /// two logits more than 0.1 apart at every step): our projector's tokens, in the two "text <__media__>
    /// text" prompts on a non-square and a square image, give mtmd's n_past and every one of llama.cpp's 24
    /// greedy tokens.
    @Test func qwen25GreedyTokensMatchLlamaCppAtEveryStep() throws {
        let reference = Qwen2VLReference.qwen25
        try #require(reference.greedy.count >= 2 && reference.margins.allSatisfy { $0.count == 24 && $0.allSatisfy { $0 > 0.1 } })
        for run in reference.greedy {
            let (positions, generated) = try Self.projectorGreedy(Self.qwen25, reference, run)
            #expect(positions == run.positions, "\(run.prompt)")
            #expect(generated == run.greedy_ids, "\(run.prompt)")
        }
    }

    /// Qwen2-VL's fixture has near ties: our projector's tokens give mtmd's n_past, and llama.cpp's greedy ids
    /// up to its first near tie (top two logits within 0.05). Our embeddings are within ~6e-5 of mtmd's, not
    /// bit-identical (its F32 attention sums in another order), and this random language model turns that into
    /// logit shifts of a few hundredths: closer races go either way (the first run flips at a 0.042 tie). The
    /// language model itself is exact: `Qwen2VLLanguageTests` matches every token on mtmd's own embeddings.
    @Test func qwen2GreedyTokensMatchLlamaCppUpToItsFirstNearTie() throws {
        let reference = Qwen2VLReference.load
        for (run, margins) in zip(reference.greedy, reference.margins) {
            let (positions, generated) = try Self.projectorGreedy(Self.qwen2, reference, run)
            #expect(positions == run.positions, "\(run.prompt)")
            let clear = margins.firstIndex { $0 < 0.05 } ?? margins.count
            print("qwen2vl projector greedy \(run.prompt): \(clear) tokens before llama.cpp's first near tie, "
                  + "\(zip(generated, run.greedy_ids).prefix { $0 == $1 }.count) identical")
            #expect(Array(generated.prefix(clear)) == Array(run.greedy_ids.prefix(clear)), "\(run.prompt)")
        }
    }
}
