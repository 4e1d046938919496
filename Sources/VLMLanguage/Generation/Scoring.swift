import VLMTensor

extension LanguageModel {
    /// Sum of log p(continuation tokens | context) for each continuation (e.g. ranking answers).
    /// The context is run once; each continuation starts from a copy of its cache. Scoring runs to
    /// the end (it is not cancellable); `compute` gives it its threads.
    public func score(context: [Int32], continuations: [[Int32]], compute: ComputeContext = ComputeContext()) throws -> [Double] {
        let compute = compute.uncancellable
        guard !context.isEmpty else { throw LanguageModelError.invalidHyperparameters("score needs a non-empty context") }
        var shared = transformer.makeCache(capacity: contextLength)
        let contextLogits = try prefill(context, cache: &shared, compute: compute)
        return try scoreContinuations(cache: shared, lastLogits: contextLogits, continuations: continuations, compute: compute)
    }

    /// Sum of log p(continuation tokens | sequence) for each continuation, from a sequence already in
    /// `cache` with `lastLogits` after its last token: `score(context:continuations:)` without the
    /// prefill, so a caller that keeps a cache across calls (e.g. a judge asking similar questions)
    /// runs only what is new. `cache` is not modified (each continuation runs on a fork).
    public func scoreContinuations(cache: KVCache, lastLogits: [Float], continuations: [[Int32]],
                                   compute: ComputeContext = ComputeContext()) throws -> [Double] {
        let compute = compute.uncancellable
        let v = hyperparameters.vocabularySize
        guard lastLogits.count == v else {
            throw LanguageModelError.invalidHyperparameters("scoreContinuations: \(lastLogits.count) logits for a \(v)-token vocabulary")
        }
        return try continuations.map { continuation in
            guard let first = continuation.first else { return 0 }
            var total = Sampler.logProbability(of: first, logits: lastLogits)
            guard continuation.count > 1 else { return total }  // the first token's probability needs no forward pass
            var fork = cache  // copy-on-write fork of the shared sequence
            // The whole continuation as one batch (its last row of logits is unused): the same batch
            // boundaries llama.cpp would see, hence the same arithmetic.
            let all = try transformer.forward(continuation, cache: &fork, logits: .all, compute: compute).logits
            for j in 1..<continuation.count {
                total += Sampler.logProbability(of: continuation[j], logits: Array(all[(j - 1) * v..<j * v]))
            }
            return total
        }
    }

    /// The tokens `continuation` adds after `context` (whose tokens are `contextTokens`): context and
    /// continuation are tokenized together and what follows the context's own tokens is kept, so the
    /// word boundary tokenizes as it would in running text (tokenizing the continuation alone would,
    /// e.g., add SentencePiece's leading space, or miss a merge across the boundary). When the joint
    /// tokenization does not extend the context's, the continuation is tokenized alone.
    public func continuationTokens(_ continuation: String, after context: String, contextTokens: [Int32],
                                   parseSpecial: Bool = false) -> [Int32] {
        let joint = tokenizer.encode(context + continuation, addSpecial: true, parseSpecial: parseSpecial)
        if joint.count > contextTokens.count, joint.starts(with: contextTokens) {
            return Array(joint.dropFirst(contextTokens.count))
        }
        return tokenizer.encode(continuation, addSpecial: false, parseSpecial: parseSpecial)
    }
}
