// The public face of VLMLanguage: load a GGUF model, tokenize, generate, score.
import Foundation
import VLMTensor

public struct ModelDescription: Sendable, Equatable {
    public var name: String
    public var architecture: String
    public var parameterCount: Int
    public var contextLength: Int
    public var trainedContextLength: Int
    public var vocabularySize: Int
    /// The format most weight bytes are stored in, e.g. "q4_1".
    public var quantization: String
    public var tokenizer: String
}

public struct GeneratedToken: Sendable {
    public var id: Int32
    /// Text completed by this token (may be empty while a UTF-8 sequence spans tokens).
    public var text: String
    /// log p(token) under the model's distribution, when asked for.
    public var logProbability: Double?
}

public enum StopReason: String, Sendable { case eos, stop, length, cancelled }

public struct GenerationTimings: Sendable {
    public var promptTokens: Int
    public var promptSeconds: Double
    public var generatedTokens: Int
    public var generationSeconds: Double
    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
    public var generatedTokensPerSecond: Double { generationSeconds > 0 ? Double(generatedTokens) / generationSeconds : 0 }
}

public struct GenerationResult: Sendable {
    public var text: String
    public var tokenIDs: [Int32]
    public var promptTokenIDs: [Int32]
    public var stopReason: StopReason
    public var logProbabilities: [Double]?
    public var timings: GenerationTimings
}

/// A loaded model. Thread-safety: `generate`/`score` may run concurrently (each uses its own KV cache);
/// `@unchecked Sendable` because all state is immutable after init (weights are a read-only mapping).
public final class LanguageModel: @unchecked Sendable {
    public let transformer: Transformer
    public let tokenizer: Tokenizer
    public let gguf: GGUFFile
    /// Positions one generation may hold (prompt + output).
    public let contextLength: Int
    public let chatTemplate: ChatTemplate?
    /// Where `chatTemplate` comes from: "file", "fallback: <reason>", "unusable: <reason>" or "none".
    public let chatTemplateSource: String

    public var hyperparameters: Hyperparameters { transformer.hyperparameters }

    /// Loads `path`. `contextLength` defaults to min(trained context, 2048).
    public init(path: URL, contextLength: Int? = nil) throws {
        gguf = try GGUFFile(url: path)
        let hp = try Hyperparameters(gguf: gguf)
        let weights = try ModelWeights(gguf: gguf, hyperparameters: hp)
        transformer = Transformer(weights: weights, hyperparameters: hp)
        tokenizer = try Tokenizer(vocabulary: Vocabulary(gguf: gguf))
        guard tokenizer.vocabulary.count == hp.vocabularySize else {
            throw LanguageModelError.invalidTokenizer("\(tokenizer.vocabulary.count) tokens for a \(hp.vocabularySize)-row embedding")
        }
        let requested = contextLength ?? min(hp.trainedContextLength, 2048)
        guard requested > 0 else { throw LanguageModelError.invalidHyperparameters("context length \(requested)") }
        self.contextLength = requested
        (chatTemplate, chatTemplateSource) = ChatTemplate.resolve(gguf: gguf, vocabulary: tokenizer.vocabulary)
    }

    public var description: ModelDescription {
        let hp = hyperparameters
        var bytesByFormat: [WeightFormat: Int] = [:]
        for t in gguf.tensors.values { bytesByFormat[t.format, default: 0] += t.byteCount }
        return ModelDescription(
            name: (try? gguf.string("general.name")) ?? "", architecture: hp.architecture,
            parameterCount: gguf.tensors.values.reduce(0) { $0 + $1.elementCount },
            contextLength: contextLength, trainedContextLength: hp.trainedContextLength,
            vocabularySize: hp.vocabularySize,
            quantization: bytesByFormat.max { $0.value < $1.value }?.key.rawValue ?? "",
            tokenizer: tokenizer.vocabulary.model)
    }

    /// Weight bytes. Each generation allocates its own cache besides (`cacheBytes`).
    public var memoryBytes: Int { transformer.weights.byteCount }

    /// Bytes of the full-context KV cache (keys and values, fp16) that `generate` allocates.
    public var cacheBytes: Int { KVCache.byteCount(hyperparameters: hyperparameters, capacity: contextLength) }

    /// Token ids of `prompt` (BOS added as the model asks; control tokens parsed when `parseSpecial`).
    public func tokenize(_ prompt: String, parseSpecial: Bool = false) -> [Int32] {
        tokenizer.encode(prompt, addSpecial: true, parseSpecial: parseSpecial)
    }

    /// Generates a continuation of `prompt`. Calls `onToken` for each token, checks for cancellation before each step.
    public func generate(prompt: [Int32], parameters: SamplingParameters = .greedy,
                         compute: ComputeContext = ComputeContext(),
                         onToken: (GeneratedToken) -> Void = { _ in }) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw LanguageModelError.invalidHyperparameters("empty prompt (the model adds no BOS)") }
        guard prompt.count < contextLength else { throw LanguageModelError.contextFull(needed: prompt.count + 1, capacity: contextLength) }
        var cache = transformer.makeCache(capacity: contextLength)
        let promptStart = Date()
        let logits = try prefill(prompt, cache: &cache, compute: compute)
        let promptSeconds = Date().timeIntervalSince(promptStart)
        var result: GenerationResult
        if compute.isCancelled {  // the prefill may have stopped part-way: there are no logits to sample from
            result = GenerationResult(text: "", tokenIDs: [], promptTokenIDs: prompt, stopReason: .cancelled,
                                      logProbabilities: parameters.logProbabilities ? [] : nil,
                                      timings: GenerationTimings(promptTokens: 0, promptSeconds: 0, generatedTokens: 0, generationSeconds: 0))
        } else {
            result = try continueGeneration(cache: &cache, lastLogits: logits, history: prompt, parameters: parameters,
                                            compute: compute, onToken: onToken)
        }
        result.timings.promptTokens = prompt.count
        result.timings.promptSeconds = promptSeconds
        return result
    }

    /// Runs the prompt in batches of `batchSize` and returns the logits after its last token.
    /// Stops part-way (between batches or layers) once the context is cancelled; callers check it again.
    /// 512 is llama.cpp's default batch: the same split gives the same arithmetic (a one-token batch
    /// sums attention in a different order from a longer one).
    public func prefill(_ prompt: [Int32], cache: inout KVCache, batchSize: Int = 512,
                        compute: ComputeContext = ComputeContext()) throws -> [Float] {
        var logits: [Float] = []
        var start = 0
        while start < prompt.count {
            if compute.isCancelled { break }
            let end = min(prompt.count, start + batchSize)
            do {
                logits = try transformer.forward(Array(prompt[start..<end]), cache: &cache, compute: compute).logits
            } catch is ComputeCancelled { break }  // stopped between layers: as if before the batch
            start = end
        }
        return logits
    }
}
