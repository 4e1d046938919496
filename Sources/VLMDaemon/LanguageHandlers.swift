import Foundation
import VLMLanguage
import VLMTensor
import VLMWire

extension GGUFError: RPCErrorConvertible {
    public var rpcError: RPCError { RPCError(code: ErrorCode.modelLoadFailed, message: description) }
}

extension LanguageModelError: RPCErrorConvertible {
    public var rpcError: RPCError {
        switch self {
        case .contextFull: return RPCError(code: ErrorCode.contextOverflow, message: description)
        case .tokenOutOfRange: return RPCError.invalidParams(description)
        default: return RPCError(code: ErrorCode.modelLoadFailed, message: description)
        }
    }
}

/// generate, tokenize, detokenize, score.
func registerLanguageHandlers(_ table: inout HandlerTable, services: Services) {
    table.register(GenerateRequest.self) { params, context in
        let lm = try await services.languageModel(params.model)
        let sampling = try samplingParameters(params)
        if params.hasImages || params.mmproj != nil || params.attribution == true {
            return try await generateWithImages(params, lm: lm, sampling: sampling, services: services, context: context)
        }
        let prompt = try promptTokens(params, lm: lm.model)
        try checkContext(prompt.count, lm: lm.model, field: params.messages != nil ? "params.messages" : "params.prompt")
        let streams = context.tokens.partialResultToken != nil
        let result = try await withGenerationCaches(lm.model.cacheBytes, registry: services.registry) {
            let progress = await context.beginProgress(title: "Generating with \(lm.id)")
            let generated = try await context.compute { compute in
                try lm.model.generate(prompt: prompt, parameters: sampling, compute: compute,
                                      onToken: tokenStreamer(context, streams: streams))
            }
            await progress.end()
            return generated
        }
        try throwIfCancelled(result)
        return generateResult(result, model: lm.id)
    }

    table.register(TokenizeRequest.self) { params, _ in
        let lm = try await services.languageModel(params.model)
        let tokenizer = lm.model.tokenizer
        let tokens = tokenizer.encode(params.text, addSpecial: params.addSpecial ?? true, parseSpecial: params.parseSpecial ?? false)
        let pieces = tokens.map { id -> String in
            let bytes = tokenizer.piece(id, renderSpecial: true)
            return String(validating: bytes, as: UTF8.self) ?? bytes.map { String(format: "<0x%02X>", $0) }.joined()
        }
        return TokenizeResult(tokens: tokens, pieces: pieces)
    }

    table.register(DetokenizeRequest.self) { params, _ in
        let lm = try await services.languageModel(params.model)
        let size = lm.model.hyperparameters.vocabularySize
        if let bad = params.tokens.firstIndex(where: { $0 < 0 || Int($0) >= size }) {
            throw RPCError.invalidParams("params.tokens[\(bad)]: \(params.tokens[bad]) is not a token id (vocabulary size \(size))")
        }
        return DetokenizeResult(text: lm.model.tokenizer.decode(params.tokens, renderSpecial: params.renderSpecial ?? false))
    }

    table.register(ScoreRequest.self) { params, context in
        let lm = try await services.languageModel(params.model)
        guard !params.continuations.isEmpty else { throw RPCError.invalidParams("params.continuations: expected at least one") }
        let tokenizer = lm.model.tokenizer
        let prefix = tokenizer.encode(params.context, addSpecial: true, parseSpecial: params.parseSpecial ?? false)
        guard !prefix.isEmpty else { throw RPCError.invalidParams("params.context: tokenizes to nothing") }
        let continuations = params.continuations.map {
            lm.model.continuationTokens($0, after: params.context, contextTokens: prefix, parseSpecial: params.parseSpecial ?? false)
        }
        if let longest = continuations.map(\.count).max() {
            try checkContext(prefix.count + longest, lm: lm.model, field: "params.continuations")
        }
        let scores = try await context.compute { compute in try lm.model.score(context: prefix, continuations: continuations, compute: compute) }
        return ScoreResult(model: lm.id, scores: zip(params.continuations, zip(scores, continuations)).map {
            ContinuationScore(continuation: $0.0, logprob: $0.1.0, tokens: $0.1.1.count)
        })
    }
}

/// Runs `body` with `bytes` of generation (KV) caches reserved under the memory budget: -32005 before
/// any work when they do not fit; given back before the reply, whatever happens.
func withGenerationCaches<T>(_ bytes: Int, registry: ModelRegistry, _ body: () async throws -> T) async throws -> T {
    let reservation = try await registry.reserveGeneration(bytes)
    do {
        let value = try await body()
        await registry.release(reservation)
        return value
    } catch {
        await registry.release(reservation)
        throw error
    }
}

/// Streams each generated token as a partial result when the client asked for them.
func tokenStreamer(_ context: RequestContext, streams: Bool) -> (GeneratedToken) -> Void {
    var index = 0
    return { token in
        if streams {
            context.sendPartialFromComputeThread(GeneratedTokenPartial(index: index, id: token.id, text: token.text, logprob: token.logProbability))
        }
        index += 1
    }
}

/// A cancelled generation still gets its one -32800 reply; what was generated so far rides along.
func throwIfCancelled(_ result: GenerationResult) throws {
    guard result.stopReason == .cancelled else { return }
    throw ComputeCancelled(partial: [
        "text": .string(result.text), "tokenIds": .array(result.tokenIDs.map { .int(Int64($0)) }),
    ] as JSONValue)
}

func generateResult(_ result: GenerationResult, model: String, imageEncodeSeconds: Double? = nil) -> GenerateResult {
    let t = result.timings
    return GenerateResult(
        model: model, text: result.text, tokenIds: result.tokenIDs, promptTokenIds: result.promptTokenIDs,
        stopReason: result.stopReason.rawValue, promptTokens: t.promptTokens, generatedTokens: t.generatedTokens,
        logprobs: result.logProbabilities,
        timings: GenerationTimingsResult(promptSeconds: t.promptSeconds, generationSeconds: t.generationSeconds,
                                         promptTokensPerSecond: t.promptTokensPerSecond, generatedTokensPerSecond: t.generatedTokensPerSecond,
                                         imageEncodeSeconds: imageEncodeSeconds))
}

func promptTokens(_ params: GenerateParams, lm: LanguageModel) throws -> [Int32] {
    let parseSpecial = params.parseSpecial ?? false
    switch (params.prompt, params.messages) {
    case (let prompt?, nil) where params.chat != true:
        return lm.tokenize(prompt, parseSpecial: parseSpecial)
    case (let prompt?, nil):
        return try chatTokens([ChatMessage(role: "user", content: prompt)], lm: lm)
    case (nil, let messages?):
        guard !messages.isEmpty else { throw RPCError.invalidParams("params.messages: expected at least one message") }
        // Without images, content parts are text parts: their text, run together.
        return try chatTokens(try messages.enumerated().map { index, message in
            let pieces = try multimodalMessage(index, message).content.map { piece -> String in
                guard case let .text(text) = piece else { throw RPCError.invalidParams("params.messages[\(index)]: an image part needs an mmproj") }
                return text
            }
            return ChatMessage(role: message.role, content: pieces.joined())
        }, lm: lm)
    default:
        throw RPCError.invalidParams("params: give exactly one of 'prompt' or 'messages'")
    }
}

/// Renders chat messages with the model's template; control tokens in the template are parsed,
/// as llama.cpp does for chat prompts.
func chatTokens(_ messages: [ChatMessage], lm: LanguageModel) throws -> [Int32] {
    try withChatTemplate(of: lm) { template in lm.tokenize(try template.apply(messages), parseSpecial: true) }
}

/// Runs `render` with the model's chat template: a model without one, or a conversation the template
/// refuses, is invalid params.
func withChatTemplate<Rendered>(of lm: LanguageModel, _ render: (ChatTemplate) throws -> Rendered) throws -> Rendered {
    guard let template = lm.chatTemplate else {
        throw RPCError.invalidParams("params.chat: this model has no usable chat template (\(lm.chatTemplateSource))")
    }
    do { return try render(template) } catch let error as JinjaError {
        throw RPCError.invalidParams("params.messages: the model's chat template refused the conversation: \(error)")
    }
}

func samplingParameters(_ p: GenerateParams) throws -> SamplingParameters {
    let maxTokens = p.maxTokens ?? 128
    guard (1...1_000_000).contains(maxTokens) else { throw RPCError.invalidParams("params.maxTokens: expected an integer in 1...1000000") }
    let temperature = p.temperature ?? 0
    guard temperature >= 0, temperature.isFinite else { throw RPCError.invalidParams("params.temperature: expected a number ≥ 0") }
    if let k = p.topK, k < 0 { throw RPCError.invalidParams("params.topK: expected an integer ≥ 0 (0 = off)") }
    if let top = p.topP, !(top > 0 && top <= 1) { throw RPCError.invalidParams("params.topP: expected a number in (0, 1]") }
    if let minP = p.minP, !(minP >= 0 && minP <= 1) { throw RPCError.invalidParams("params.minP: expected a number in [0, 1]") }
    if let penalty = p.repetitionPenalty, !(penalty > 0 && penalty.isFinite) {
        throw RPCError.invalidParams("params.repetitionPenalty: expected a number > 0 (1 = off)")
    }
    if let stop = p.stop, stop.contains(where: \.isEmpty) { throw RPCError.invalidParams("params.stop: stop strings must not be empty") }
    return SamplingParameters(
        temperature: temperature, topK: p.topK ?? 0, topP: p.topP ?? 1, minP: p.minP ?? 0,
        repetitionPenalty: p.repetitionPenalty ?? 1, seed: p.seed ?? 0, maxTokens: maxTokens,
        stopStrings: p.stop ?? [], logProbabilities: p.logprobs ?? false)
}

func checkContext(_ tokens: Int, lm: LanguageModel, field: String) throws {
    guard tokens < lm.contextLength else {
        throw RPCError(code: ErrorCode.contextOverflow, message:
            "\(field): \(tokens) tokens do not fit the context of \(lm.contextLength) tokens (load the model with a larger contextLength, up to \(lm.hyperparameters.trainedContextLength))")
    }
}
