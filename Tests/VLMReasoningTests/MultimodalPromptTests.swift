// Multimodal prompts laid out as llama-mtmd-cli lays them out: the marker/content-part rules of
// MultimodalPrompt, the chunking of MultimodalLayout against libmtmd's own chunks, and greedy tokens of
// SmolLM2 with a random mmproj against llama.cpp's (scripts/fixtures/make_mmchat_fixtures.py).
import Foundation
import Testing
import VLMImage
import VLMLanguage
@testable import VLMReasoning
import VLMTensor

/// llama.cpp's single-turn mtmd-cli steps on SmolLM2-135M-Instruct and a 576-wide random mmproj.
struct MultimodalChatReference: Decodable {
    struct Run: Decodable {
        let prompt: String; let images: [String]; let chat: Bool; let formatted: String
        let chunks: [LLaVAReference.Chunk]; let positions: Int; let greedy_ids: [Int32]
        /// Leading tokens that are no near tie for llama.cpp itself (see the generator).
        let comparable_tokens: Int
    }
    let maxTokens: Int
    let runs: [Run]
    /// llama.cpp's image tokens per image ([16][576]).
    let embeddings: [String: [Float]]

    static let directory = TestPaths.fixtures.appendingPathComponent("mmchat")
    static let load: MultimodalChatReference = try! JSONDecoder().decode(
        MultimodalChatReference.self, from: Data(contentsOf: directory.appendingPathComponent("reference.json")))
}

@Suite struct MultimodalPromptRuleTests {
    let m = mediaMarker

    @Test func withoutAMarkerTheImagesFollowThePromptText() throws {
        let prompt = try MultimodalPrompt(prompt: "Describe.", images: ["a", "b"])
        #expect(prompt.text == "Describe.\(m)\(m)")
        #expect(prompt.images == ["a", "b"])
    }

    @Test func markersTakeTheImagesInOrder() throws {
        let prompt = try MultimodalPrompt(prompt: "x \(m) y \(m) z", images: ["a", "b"])
        #expect(prompt.text == "x \(m) y \(m) z")
        #expect(prompt.images == ["a", "b"])
    }

    @Test func markerAndImageCountsMustAgree() {
        #expect(throws: MultimodalPromptError.markerCount(markers: 2, images: 1)) {
            _ = try MultimodalPrompt(prompt: "\(m) and \(m)", images: ["a"])
        }
        #expect(throws: MultimodalPromptError.markerCount(markers: 1, images: 2)) {
            _ = try MultimodalPrompt(prompt: "\(m) alone", images: ["a", "b"])
        }
        // Markers with no images at all are also a mismatch (text about the marker is not an image).
        #expect(throws: MultimodalPromptError.markerCount(markers: 1, images: 0)) {
            _ = try MultimodalPrompt<String>(prompt: "\(m)", images: [])
        }
    }

    @Test func contentPartsPlaceTheirImagesAndTextMarkersTakeTheLooseOnes() throws {
        let messages: [MultimodalMessage<String>] = [
            MultimodalMessage(role: "system", content: [.text("Be brief.")]),
            MultimodalMessage(role: "user", content: [.text("first \(m), then"), .image("part"), .text(" and \(m)")]),
        ]
        let placed = try MultimodalPrompt.placed(messages, loose: ["loose1", "loose2"])
        #expect(placed.messages.map(\.content) == ["Be brief.", "first \(m), then\(m) and \(m)"])
        #expect(placed.images == ["loose1", "part", "loose2"])
    }

    @Test func looseImagesWithoutMarkersFollowTheLastUserMessage() throws {
        let messages: [MultimodalMessage<String>] = [
            MultimodalMessage(role: "user", content: [.text("Hi")]),
            MultimodalMessage(role: "assistant", content: [.text("Hello.")]),
            MultimodalMessage(role: "user", content: [.text("What is this?")]),
            MultimodalMessage(role: "assistant", content: [.text("Let me see.")]),
        ]
        let placed = try MultimodalPrompt.placed(messages, loose: ["a"])
        #expect(placed.messages.map(\.content) == ["Hi", "Hello.", "What is this?\(m)", "Let me see."])
        #expect(throws: MultimodalPromptError.noUserMessage) {
            _ = try MultimodalPrompt.placed([MultimodalMessage(role: "system", content: [.text("S")])], loose: ["a"])
        }
    }

    @Test func aTemplateThatDropsAMarkerIsRefused() throws {
        // Renders only the last message: the first message's image marker is lost.
        let template = try #require(ChatTemplate(template: "{{ messages[-1]['content'] }}"))
        let messages: [MultimodalMessage<String>] = [
            MultimodalMessage(role: "user", content: [.image("a"), .text("one")]),
            MultimodalMessage(role: "assistant", content: [.text("ok")]),
            MultimodalMessage(role: "user", content: [.text("two")]),
        ]
        #expect(throws: MultimodalPromptError.templateMarkers(rendered: 0, expected: 1)) {
            _ = try MultimodalPrompt(messages: messages, images: [], template: template)
        }
    }
}

@Suite struct MultimodalLayoutTests {
    /// stories260K adds BOS: an image first gets BOS in a chunk of its own, as mtmd_tokenize makes it.
    @Test func chunksMatchLibmtmdOnTheLLaVAFixture() throws {
        let model = Models.stories
        for run in LLaVAReference.load.greedy {
            let tokens = try LLaVAModels.tower.imageTokens(for: LLaVAModels.image(run.image), compute: ComputeContext())
            let layout = try MultimodalLayout(text: run.prompt, images: [tokens], tokenizer: model.tokenizer, addSpecial: true, parseSpecial: false)
            try expectChunks(layout, run.chunks, "\(run.prompt)")
            #expect(layout.positionCount == run.positions)
            let imageStart = run.chunks.prefix { if case .text = $0 { return true } else { return false } }
                .reduce(0) { if case let .text(t) = $1 { return $0 + t.count } else { return $0 } }
            #expect(layout.imagePositions == [[imageStart..<(imageStart + 16)]])
        }
    }

    @Test func adjacentImagesAndTextRunTogetherAsInMtmd() throws {
        let model = Models.stories
        let image = ImageTokens(chunks: [.text("<"), .embeddings([Float](repeating: 0, count: 2 * 64), count: 2), .text(">")])
        let layout = try MultimodalLayout(text: "a\(mediaMarker)\(mediaMarker)b", images: [image, image], tokenizer: model.tokenizer,
                                          addSpecial: true, parseSpecial: false)
        // BOS+"a"+"<" | image | ">"+"<" | image | ">"+"b"
        #expect(layout.segments.map(\.positionCount).count == 5)
        #expect(layout.imagePositions.map { $0.map(\.count) } == [[2], [2]])
        #expect(layout.imagePositions[1][0].lowerBound == layout.imagePositions[0][0].upperBound + layout.segments[2].positionCount)
    }
}

func expectChunks(_ layout: MultimodalLayout, _ chunks: [LLaVAReference.Chunk], _ comment: String) throws {
    try #require(layout.segments.count == chunks.count, "\(comment): \(layout.segments.count) segments for \(chunks.count) chunks")
    for (ours, theirs) in zip(layout.segments, chunks) {
        switch (ours, theirs) {
        case let (.tokens(a), .text(b)): #expect(a == b, "\(comment)")
        case let (.embeddings(_, count, _), .image(n)): #expect(count == n, "\(comment)")
        default: Issue.record("\(comment): chunk kinds differ")
        }
    }
}

@Suite struct MultimodalChatParityTests {
    static let model: LanguageModel? = TestPaths.smolLM2.flatMap { try? LanguageModel(path: $0, contextLength: 1024) }
    static let projector = try! MultimodalProjectors.load(
        url: MultimodalChatReference.directory.appendingPathComponent("smollm2-mmproj.gguf"))

    func requireModel() -> LanguageModel? {
        if Self.model == nil, TestPaths.requireModels { Issue.record("SmolLM2-135M-Instruct.Q4_1.gguf not found (scripts/get-smollm2.sh)") }
        return Self.model
    }

    /// mtmd-cli's chat text, chunks and greedy tokens, through MultimodalPrompt, MultimodalLayout and
    /// MultimodalGeneration, for one image, two at markers, two appended, and a raw prompt. The image
    /// tokens are llama.cpp's own, so this holds the language-model side to llama.cpp token for token,
    /// up to the first near tie of llama.cpp's own (its two attention paths disagree, or the top two
    /// logits are within 0.1).
    @Test func greedyTokensMatchLlamaMtmdCli() throws {
        guard let model = requireModel() else { return }
        try Self.projector.checkCompatible(languageModelWidth: model.hyperparameters.embeddingLength)
        let reference = MultimodalChatReference.load
        var compared = 0
        for run in reference.runs {
            let prompt: MultimodalPrompt<String> = run.chat
                ? try MultimodalPrompt(messages: [MultimodalMessage(role: "user", content: [.text(run.prompt)])], images: run.images,
                                       template: try #require(model.chatTemplate))
                : try MultimodalPrompt(prompt: run.prompt, images: run.images)
            #expect(prompt.text == run.formatted)
            let tokens = try prompt.images.map { name in
                let values = try #require(reference.embeddings[name])
                return ImageTokens(chunks: [.embeddings(values, count: values.count / 576)])
            }
            let layout = try MultimodalLayout(text: prompt.text, images: tokens, tokenizer: model.tokenizer, addSpecial: true, parseSpecial: true)
            try expectChunks(layout, run.chunks, run.prompt)
            #expect(layout.positionCount == run.positions)
            var parameters = SamplingParameters.greedy
            parameters.maxTokens = reference.maxTokens
            let (result, _) = try MultimodalGeneration.generate(model, layout: layout, parameters: parameters, compute: ComputeContext(), onToken: { _ in })
            // llama.cpp's list ends with the end-of-generation token when one came; ours stops before it.
            let expected = run.greedy_ids.filter { !model.tokenizer.vocabulary.endOfGeneration.contains($0) }
            let agreeing = zip(result.tokenIDs, expected).prefix { $0 == $1 }.count
            print("mmchat greedy \(run.prompt): \(agreeing)/\(expected.count) tokens identical (\(run.comparable_tokens) comparable)")
            #expect(Array(result.tokenIDs.prefix(run.comparable_tokens)) == Array(expected.prefix(run.comparable_tokens)), "\(run.prompt)")
            compared += run.comparable_tokens
        }
        #expect(compared >= 40, "the fixture compares too few tokens to mean anything")
    }

    /// The tower itself against llama.cpp's image tokens for this file (llama.cpp's attention runs in fp16).
    @Test func imageTokensMatchLlamaCpp() throws {
        for (name, theirs) in MultimodalChatReference.load.embeddings.sorted(by: { $0.key < $1.key }) {
            let ours = try Self.projector.imageTokens(for: LLaVAModels.image(name), compute: ComputeContext())
            guard case let .embeddings(values, count)? = ours.chunks.first, ours.chunks.count == 1 else {
                Issue.record("\(name): expected one embeddings chunk"); continue
            }
            #expect(count * 576 == theirs.count)
            let error = zip(values, theirs).map { abs($0 - $1) }.max() ?? .infinity
            let scale = theirs.map(abs).max() ?? 0
            print("mmchat tower \(name): max |error| \(error) of max |value| \(scale)")
            #expect(error < 1e-2 * scale, "\(name)")
        }
    }
}

@Suite struct MultimodalAttributionTests {
    @Test func theAnswerIsCutAfterEachSentenceEnd() {
        let tokenizer = Models.stories.tokenizer
        let answer = tokenizer.encode("Lily saw a cat. It was big! Was it", addSpecial: false)
        let sentences = MultimodalGeneration.sentenceTokens(answer, tokenizer: tokenizer)
        #expect(sentences.map { tokenizer.decode($0) } == [" Lily saw a cat.", " It was big!", " Was it"])  // SentencePiece: a leading space
        #expect(sentences.flatMap { $0 } == answer)
    }

    @Test func mapsAreNormalisedTogetherAndUniformWithoutMass() {
        let maps = [AttributionMap(gridHeight: 1, gridWidth: 2, scores: [1, 2], normalization: "n"),
                    AttributionMap(gridHeight: 1, gridWidth: 1, scores: [5], normalization: "n")]
        #expect(MultimodalGeneration.jointlyNormalised(maps).map(\.scores) == [[0.125, 0.25], [0.625]])
        let empty: [AttributionMap] = maps.map { map in
            AttributionMap(gridHeight: map.gridHeight, gridWidth: map.gridWidth, scores: [Float](repeating: 0, count: map.scores.count),
                           normalization: "n")
        }
        let third: Float = 1 / 3
        let uniform: [[Float]] = [[third, third], [third]]
        #expect(MultimodalGeneration.jointlyNormalised(empty).map(\.scores) == uniform)
    }

    /// generate's maps lie on each image's token pixels (ImageTokenGeometryTests works the cells out by
    /// hand): a tall image on LLaVA's padded square (16 tokens at positions 10..<26) and a wide one in
    /// idefics3's three 32-px tiles of 2x2 tokens, each its own chunk between marker text, plus the global
    /// view. LLaVA token 5 (patch 6, image x 54.5..<100, y 75..<150) is cell (1, 1) of the 4 x 2 grid; the
    /// wide image's grid is 6 x 2 cells of 50 px, tile t in columns 2t and 2t + 1.
    @Test func mapsLieOnEachImagesTokenPixels() {
        let tall = LLaVAModels.tower.tokenGeometry(width: 100, height: 300, count: 16)
        let wide = Idefics3Models.projector.tokenGeometry(width: 300, height: 100, count: 16)
        let images: [[Range<Int>]] = [[10..<26], [30..<34, 36..<40, 42..<46, 50..<54]]
        func maps(_ mass: [Int: Float]) -> [AttributionMap] {
            var span = [Float](repeating: 0, count: 54 - 10)
            for (position, m) in mass { span[position - 10] = m }
            return MultimodalGeneration.imageMaps(span, from: 10, images: images, geometries: [tall, wide])
        }
        func near(_ a: [Float], _ b: [Float]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-6 } }

        // Tile 2's token (1, 1) is the third chunk's last token, position 45: image x 250..<300, y 50..<100.
        let both = maps([15: 0.3, 45: 0.1])
        #expect(both[0].gridHeight == 4 && both[0].gridWidth == 2 && both[1].gridHeight == 2 && both[1].gridWidth == 6)
        #expect(near(both[0].scores, (0..<8).map { $0 == 3 ? 0.75 : 0 }))
        #expect(near(both[1].scores, (0..<12).map { $0 == 11 ? 0.25 : 0 }))
        // Each tile's tokens land in its own two columns, at the tile's place in the image.
        for (tile, chunk) in images[1].prefix(3).enumerated() {
            let map = maps(Dictionary(uniqueKeysWithValues: chunk.map { ($0, Float(1)) }))[1]
            #expect(near(map.scores, (0..<12).map { $0 % 6 / 2 == tile ? 0.25 : 0 }), "tile \(tile)")
        }
        // The global view's token (0, 0) covers x 0..<150, y 0..<50: three cells, by area.
        #expect(near(maps([50: 1])[1].scores, (0..<12).map { $0 < 3 ? 1.0 / 3 : 0 }))
        // No attention at all: uniform over every cell of both maps.
        #expect(near(maps([:]).flatMap(\.scores), [Float](repeating: 1.0 / 20, count: 20)))
    }
}
