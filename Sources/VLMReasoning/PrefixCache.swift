// One KV cache that follows a growing token sequence, re-running only what changed.
import VLMLanguage
import VLMTensor

/// The engine re-tokenizes the whole context after each stage or step (so what the model reads is
/// exactly the tokenization of the text, whatever tokens were sampled); the cache keeps the longest
/// common prefix and runs only the new tail.
struct PrefixCache {
    private(set) var cache: KVCache
    /// The tokens whose keys and values are in `cache`.
    private(set) var tokens: [Int32] = []
    /// Logits after the last of `tokens`.
    private(set) var logits: [Float] = []

    /// The visual prefix `cache` starts with (its version), and its length in positions.
    private var visualVersion: Int?
    private var base = 0

    init(model: LanguageModel) {
        cache = model.transformer.makeCache(capacity: model.contextLength)
    }

    /// Makes `cache` hold `visual`'s positions (when given) then `target` and returns the logits after
    /// its last token. A visual prefix that changed since the last call (a look appended image tokens)
    /// restarts the cache from it.
    mutating func extend(to target: [Int32], model: LanguageModel, visual: VisualPrefix? = nil,
                         compute: ComputeContext) throws -> [Float] {
        var target = target
        if let visual {
            target = visual.textTokens(target)
            if visualVersion != visual.version {
                (cache, base, visualVersion, tokens, logits) = (visual.cache, visual.cache.count, visual.version, [], [])
            }
        }
        precondition(!target.isEmpty, "a prefix needs at least one token")
        if target == tokens, !logits.isEmpty { return logits }
        var common = 0
        let limit = min(tokens.count, target.count - 1)  // at least one token must run to produce logits
        while common < limit, tokens[common] == target[common] { common += 1 }
        cache.truncate(to: base + common)
        tokens = Array(target[..<common])
        logits = []
        let newLogits = try model.prefill(Array(target[common...]), cache: &cache, compute: compute)
        guard !compute.isCancelled else {
            // prefill stops between batches when cancelled: the cache no longer matches any prefix we know.
            cache.truncate(to: base)
            tokens = []
            throw ComputeCancelled()
        }
        tokens = target
        logits = newLogits
        return logits
    }
}
