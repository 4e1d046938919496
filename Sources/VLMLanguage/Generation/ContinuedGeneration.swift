// Generating from a sequence that is already in a KV cache: the decoding loop of `generate` without
// the prefill, so callers can run a shared prefix once and fork the cache per continuation (beam
// candidates, staged prompting). `generate` is prefill + this loop.
import Foundation
import VLMTensor

extension LanguageModel {
    /// Continues a sequence whose tokens are already in `cache`.
    ///
    /// - Parameters:
    ///   - cache: holds every position of the sequence so far; the sampled tokens are appended (except
    ///     the last one, whose keys/values are never needed: the loop stops after sampling it). Pass a
    ///     copy (`var fork = shared`) to keep the shared prefix for further continuations.
    ///   - lastLogits: the logits after the sequence's last token (from `prefill` or a forward pass).
    ///   - history: the sequence's token ids, for the repetition penalty; reported as `promptTokenIDs`.
    ///   - parameters: sampling, stop strings and limits, exactly as for `generate`.
    ///   - attentionLayers, onAttention: each sampled token fed back through the model reports its
    ///     attention weights in these layers (`ForwardOutput.attention`); the last token is never fed.
    /// - Returns: the continuation. Prompt timings are zero: the prefix was run by the caller.
    ///
    /// Loop semantics (same as `generate`): cancellation is checked before every sampled token; an
    /// end-of-generation token ends the loop without being reported; text stops before the first stop
    /// string (the token containing it is reported with only the text before it); pieces are streamed
    /// as complete UTF-8 (a character split across tokens arrives with its last token).
    public func continueGeneration(cache: inout KVCache, lastLogits: [Float], history: [Int32],
                                   parameters: SamplingParameters,
                                   compute: ComputeContext = ComputeContext(),
                                   attentionLayers: Set<Int> = [], onAttention: ([Int: [Float]]) -> Void = { _ in },
                                   onToken: (GeneratedToken) -> Void = { _ in }) throws -> GenerationResult {
        guard lastLogits.count == hyperparameters.vocabularySize else {
            throw LanguageModelError.invalidHyperparameters(
                "continueGeneration: \(lastLogits.count) logits for a \(hyperparameters.vocabularySize)-token vocabulary")
        }
        var sampler = Sampler(parameters)
        var logits = lastLogits
        let start = Date()
        var tokens: [Int32] = [], logProbabilities: [Double] = [], text = ""
        var stream = UTF8StreamDecoder()
        var reason = StopReason.length
        while tokens.count < parameters.maxTokens {
            if compute.isCancelled { reason = .cancelled; break }
            let token = sampler.sample(logits, history: history + tokens)
            if tokenizer.vocabulary.endOfGeneration.contains(token) { reason = .eos; break }
            let logProbability = parameters.logProbabilities ? Sampler.logProbability(of: token, logits: logits) : nil
            tokens.append(token)
            if let lp = logProbability { logProbabilities.append(lp) }
            var piece = stream.append(tokenizer.piece(token))
            text += piece
            if let stop = parameters.stopStrings.compactMap({ text.range(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) {
                // Report only the text before the stop string.
                let kept = text[..<stop.lowerBound]
                piece = String(piece.dropLast(text.count - kept.count))
                text = String(kept)
                onToken(GeneratedToken(id: token, text: piece, logProbability: logProbability))
                reason = .stop
                break
            }
            onToken(GeneratedToken(id: token, text: piece, logProbability: logProbability))
            guard cache.count < cache.capacity else { reason = .length; break }
            // One token's pass is short: cancellation is noticed before the next token, not mid-pass.
            if tokens.count < parameters.maxTokens {
                let output = try transformer.forward([token], cache: &cache, attentionLayers: attentionLayers, compute: compute.uncancellable)
                logits = output.logits
                if !attentionLayers.isEmpty { onAttention(output.attention) }
            }
        }
        if reason != .stop { text += stream.flush() }
        return GenerationResult(
            text: text, tokenIDs: tokens, promptTokenIDs: history, stopReason: reason,
            logProbabilities: parameters.logProbabilities ? logProbabilities : nil,
            timings: GenerationTimings(promptTokens: 0, promptSeconds: 0,
                                       generatedTokens: tokens.count, generationSeconds: Date().timeIntervalSince(start)))
    }
}
