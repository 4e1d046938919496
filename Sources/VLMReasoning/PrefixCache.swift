// One KV cache that follows a growing context, re-running only what changed.
import VLMLanguage
import VLMTensor

/// One piece of the reasoning context after the visual prefix: text tokens, or the chunks of an image a
/// step looked at (marker tokens and image embeddings, laid out as the projector lays them).
enum ContextPiece {
    case tokens([Int32])
    /// `id` tells looks apart: a look's chunks never change once in the context.
    case image(id: Int, segments: [PromptSegment])

    /// KV-cache slots the piece fills.
    var slotCount: Int {
        switch self {
        case let .tokens(tokens): tokens.count
        case let .image(_, segments): segments.reduce(0) { $0 + $1.positionCount }
        }
    }

    /// Text token ids of `pieces` in order (what sampling's repetition penalty reads).
    static func textTokens(_ pieces: [ContextPiece]) -> [Int32] {
        pieces.flatMap { piece -> [Int32] in
            if case let .tokens(tokens) = piece { tokens } else { [] }
        }
    }

    static func slotCount(_ pieces: [ContextPiece]) -> Int { pieces.reduce(0) { $0 + $1.slotCount } }
}

/// The engine re-tokenizes the whole context after each stage or step (so what the model reads is
/// exactly the tokenization of the text, whatever tokens were sampled); the cache keeps the longest
/// common prefix and runs only the new tail. A look's chunks are one unit of that prefix: kept whole
/// or re-run whole.
struct PrefixCache {
    /// What a cached slot holds, for finding the common prefix: a text token, or a whole look.
    private enum Unit: Equatable {
        case token(Int32)
        case image(id: Int, slots: Int)
    }

    private(set) var cache: KVCache
    /// What `cache` holds after `base`.
    private var units: [Unit] = []
    /// Logits after the last of `units`.
    private(set) var logits: [Float] = []
    /// Positions this cache has run (text and image), so tests can count re-prefills without timing them.
    private(set) var prefilledPositions = 0

    /// The visual prefix `cache` starts with (its version), and its length in positions.
    private var visualVersion: Int?
    private(set) var base = 0

    init(model: LanguageModel) {
        cache = model.transformer.makeCache(capacity: model.contextLength)
    }

    /// `pieces` as they sit after `visual`: the prompt's leading tokens (BOS) that the prefix already
    /// holds dropped from the first text piece.
    static func placed(_ pieces: [ContextPiece], after visual: VisualPrefix?) -> [ContextPiece] {
        guard let visual, case let .tokens(first)? = pieces.first else { return pieces }
        return [.tokens(visual.textTokens(first))] + pieces.dropFirst()
    }

    /// The context slot where the piece after `pieces` starts.
    static func endSlot(of pieces: [ContextPiece], after visual: VisualPrefix?) -> Int {
        (visual?.cache.count ?? 0) + ContextPiece.slotCount(placed(pieces, after: visual))
    }

    /// Text only: `target` is one run of tokens.
    mutating func extend(to target: [Int32], model: LanguageModel, visual: VisualPrefix? = nil,
                         compute: ComputeContext) throws -> [Float] {
        try extend(to: [.tokens(target)], model: model, visual: visual, compute: compute)
    }

    /// Makes `cache` hold `visual`'s positions (when given) then `target` and returns the logits after
    /// its last position. A visual prefix that changed since the last call (a look taken before the
    /// run) restarts the cache from it.
    mutating func extend(to target: [ContextPiece], model: LanguageModel, visual: VisualPrefix? = nil,
                         compute: ComputeContext) throws -> [Float] {
        let target = Self.placed(target.filter { $0.slotCount > 0 }, after: visual)
        if let visual, visualVersion != visual.version {
            (cache, base, visualVersion, units, logits) = (visual.cache, visual.cache.count, visual.version, [], [])
        }
        let wanted = target.flatMap(Self.units)
        precondition(!wanted.isEmpty, "a prefix needs at least one position")
        if wanted == units, !logits.isEmpty { return logits }
        var common = 0
        let limit = min(units.count, wanted.count - 1)  // at least one unit must run to produce logits
        while common < limit, units[common] == wanted[common] { common += 1 }
        let kept = units[..<common].reduce(0) { $0 + Self.slots($1) }
        cache.truncate(to: base + kept)
        units = Array(wanted[..<common])
        logits = []
        let tail = Self.segments(of: target, after: common)
        let newLogits = try model.prefill(segments: tail, cache: &cache, compute: compute)
        guard !compute.isCancelled else {
            // prefill stops between batches when cancelled: the cache no longer matches any prefix we know.
            cache.truncate(to: base)
            units = []
            throw ComputeCancelled()
        }
        prefilledPositions += tail.reduce(0) { $0 + $1.positionCount }
        units = wanted
        logits = newLogits
        return logits
    }

    /// Runs `body` on the cache itself (no fork to copy) to append a continuation of what it holds;
    /// `appended` names the token ids of its result, of which those that reached the cache stay cached
    /// for the next `extend`, which keeps what its target shares with them.
    mutating func continueInPlace<Result>(_ body: (inout KVCache) throws -> Result,
                                          appended: (Result) -> [Int32]) throws -> Result {
        let start = cache.count
        logits = []
        do {
            let result = try body(&cache)
            units += appended(result).prefix(cache.count - start).map { .token($0) }
            return result
        } catch {
            cache.truncate(to: start)
            throw error
        }
    }

    private static func units(_ piece: ContextPiece) -> [Unit] {
        switch piece {
        case let .tokens(tokens): tokens.map { .token($0) }
        case let .image(id, _): [.image(id: id, slots: piece.slotCount)]
        }
    }

    private static func slots(_ unit: Unit) -> Int {
        switch unit {
        case .token: 1
        case let .image(_, slots): slots
        }
    }

    /// The segments that run `pieces` from their `skip`-th unit on.
    private static func segments(of pieces: [ContextPiece], after skip: Int) -> [PromptSegment] {
        var skip = skip, segments: [PromptSegment] = []
        for piece in pieces {
            switch piece {
            case let .tokens(tokens):
                if skip < tokens.count { segments.append(.tokens(Array(tokens[skip...]))) }
                skip = max(0, skip - tokens.count)
            case let .image(_, chunks):
                if skip == 0 { segments += chunks }
                skip = max(0, skip - 1)
            }
        }
        return segments
    }
}
