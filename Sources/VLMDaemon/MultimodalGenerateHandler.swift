import Foundation
import VLMImage
import VLMLanguage
import VLMReasoning
import VLMWire

extension MultimodalPromptError: RPCErrorConvertible {
    public var rpcError: RPCError { RPCError.invalidParams("params.images: \(description)") }
}

/// `generate` with images: the prompt laid out as llama-mtmd-cli lays it out (MultimodalPrompt), each
/// image's tokens from the projector or the projector image cache, then the text decoding loop.
/// Every check that needs no image encoded comes before any work.
func generateWithImages(_ params: GenerateParams, lm: LoadedLanguageModel, sampling: SamplingParameters,
                        services: Services, context: RequestContext) async throws -> GenerateResult {
    let loaded = try await services.model(params.mmproj, of: ProjectorFamily.self)
    let projector = loaded.projector
    try projector.checkCompatible(languageModelWidth: lm.model.hyperparameters.embeddingLength)
    let (prompt, chat) = try multimodalPrompt(params, lm: lm.model)
    if params.attribution == true, prompt.images.isEmpty {
        throw RPCError.invalidParams("params.attribution: there are no images to attribute to")
    }
    let images = prompt.images.isEmpty ? [] : try services.decodeImages(prompt.images)
    let cache = services.projectorImages
    for (index, image) in images.enumerated() where image.image == nil && cache.tokens(of: image.imageId, projector: loaded.id) == nil {
        throw RPCError.invalidParams("params.images: image \(index) ('\(image.imageId)') is not in \(loaded.id)'s image cache; send its path or png")
    }
    let streams = context.tokens.partialResultToken != nil
    let promptText = prompt.text
    let attribute = params.attribution == true
    // With attribution the prompt's cache is kept beside the generation's.
    return try await withGenerationCaches(lm.model.cacheBytes * (attribute ? 2 : 1), registry: services.registry) {
        let progress = await context.beginProgress(title: "Generating with \(lm.id) and \(loaded.id)")
        let reply = try await context.compute { compute in
            let encodeStart = Date()
            var cached: [Bool] = []
            let located = try images.map { image -> LocatedImageTokens in
                if let hit = cache.tokens(of: image.imageId, projector: loaded.id) { cached.append(true); return hit }
                let encoded = try projector.locatedImageTokens(for: image.image!, compute: compute)
                cache.insert(encoded, of: image.imageId, projector: loaded.id)
                cached.append(false)
                return encoded
            }
            let encodeSeconds = Date().timeIntervalSince(encodeStart)
            let tokens = located.map(\.tokens), geometries = located.map(\.geometry)
            let layout = try MultimodalLayout(text: promptText, images: tokens, tokenizer: lm.model.tokenizer, addSpecial: true,
                                              parseSpecial: chat || params.parseSpecial == true)
            try checkContext(layout.positionCount, lm: lm.model, field: "params.images")
            let (result, promptCache) = try MultimodalGeneration.generate(
                lm.model, layout: layout, parameters: sampling, keepPromptCache: attribute, compute: compute,
                onToken: tokenStreamer(context, streams: streams))
            try throwIfCancelled(result)
            var reply = generateResult(result, model: lm.id, imageEncodeSeconds: encodeSeconds)
            reply.imageTokens = images.indices.map { i in
                ImageTokensInfo(index: i, imageId: images[i].imageId, tokens: tokens[i].embeddingCount,
                                position: layout.imagePositions[i].first?.lowerBound ?? 0, cached: cached[i])
            }
            if let promptCache {
                let sentences = try MultimodalGeneration.attribution(
                    of: result.tokenIDs, after: promptCache, model: lm.model, layout: layout, geometries: geometries, compute: compute)
                reply.attributions = sentences.enumerated().map { wireSentence($1, index: $0, geometries: geometries) }
            }
            return reply
        }
        await progress.end()
        return reply
    }
}

/// The prompt text with its markers and the images in marker order, and whether it went through the chat template.
func multimodalPrompt(_ params: GenerateParams, lm: LanguageModel) throws -> (MultimodalPrompt<ImageInput>, chat: Bool) {
    let loose = params.images ?? []
    switch (params.prompt, params.messages) {
    case (let prompt?, nil) where params.chat != true:
        return (try MultimodalPrompt(prompt: prompt, images: loose), false)
    case (let prompt?, nil):
        return (try chatPrompt([MultimodalMessage(role: "user", content: [.text(prompt)])], images: loose, lm: lm), true)
    case (nil, let messages?):
        guard !messages.isEmpty else { throw RPCError.invalidParams("params.messages: expected at least one message") }
        return (try chatPrompt(try messages.enumerated().map { try multimodalMessage($0.offset, $0.element) }, images: loose, lm: lm), true)
    default:
        throw RPCError.invalidParams("params: give exactly one of 'prompt' or 'messages'")
    }
}

func multimodalMessage(_ index: Int, _ message: ChatMessageParam) throws -> MultimodalMessage<ImageInput> {
    guard ["system", "user", "assistant"].contains(message.role) else {
        throw RPCError.invalidParams("params.messages[\(index)].role: expected \"system\", \"user\" or \"assistant\"")
    }
    switch message.content {
    case let .text(text):
        return MultimodalMessage(role: message.role, content: [.text(text)])
    case let .parts(parts):
        return MultimodalMessage(role: message.role, content: try parts.enumerated().map { p, part in
            switch (part.type, part.text, part.image) {
            case ("text", let text?, nil): return .text(text)
            case ("image", nil, let image?): return .image(image)
            default:
                throw RPCError.invalidParams(
                    "params.messages[\(index)].content[\(p)]: expected {type: \"text\", text} or {type: \"image\", image}")
            }
        })
    }
}

func chatPrompt(_ messages: [MultimodalMessage<ImageInput>], images: [ImageInput], lm: LanguageModel) throws -> MultimodalPrompt<ImageInput> {
    try withChatTemplate(of: lm) { template in try MultimodalPrompt(messages: messages, images: images, template: template) }
}

/// `geometries[i]`: image i's token geometry, whose grid its map lies on (the cells' pixel edges go out with it).
func wireSentence(_ sentence: SentenceAttention, index: Int, geometries: [ImageTokenGeometry]) -> SentenceAttribution {
    SentenceAttribution(sentence: index, text: sentence.text, maps: zip(sentence.maps, geometries).enumerated().map { image, item in
        let (map, geometry) = item
        return ImageAttentionMap(image: image, gridHeight: map.gridHeight, gridWidth: map.gridWidth, scores: map.scores,
                                 columnEdges: geometry.columnEdges, rowEdges: geometry.rowEdges)
    })
}
