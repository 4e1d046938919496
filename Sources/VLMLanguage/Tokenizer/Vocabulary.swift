// The token table a GGUF file carries under `tokenizer.ggml.*`.

/// llama.cpp's token types (`llama_token_type`).
public enum TokenKind: Int32, Sendable {
    case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

public struct Vocabulary: Sendable {
    /// `llama` (SentencePiece-style) or `gpt2` (byte-level BPE).
    public let model: String
    /// `tokenizer.ggml.pre`: which pre-tokenizer splits text before BPE (gpt2 models only).
    public let preTokenizer: String
    public let texts: [String]
    public let scores: [Float]
    public let kinds: [TokenKind]
    /// Keyed by UTF-8 bytes: Swift's String equality is canonical equivalence ("e\u{301}" == "é"), but
    /// tokens are byte strings ("▁e" + U+0301 and "▁é" are different tokens).
    let idsByText: [[UInt8]: Int32]
    /// BPE merge rank keyed by "left right".
    let mergeRanks: [String: Int]

    public let bos: Int32?
    public let eos: Int32?
    public let unknown: Int32?
    public let padding: Int32?
    public let addBOS: Bool
    public let addEOS: Bool
    public let addSpacePrefix: Bool
    /// Tokens that end generation: EOS plus the end-of-turn markers llama.cpp recognises by text.
    public let endOfGeneration: Set<Int32>

    public var count: Int { texts.count }

    public init(gguf: GGUFFile) throws {
        model = try gguf.string("tokenizer.ggml.model")
        guard model == "llama" || model == "gpt2" else { throw LanguageModelError.unsupportedTokenizer(model) }
        preTokenizer = (try? gguf.string("tokenizer.ggml.pre")) ?? "default"
        guard let tokenValues = gguf.metadata["tokenizer.ggml.tokens"]?.arrayValue else {
            throw GGUFError.missingKey("tokenizer.ggml.tokens")
        }
        texts = try tokenValues.map {
            guard let s = $0.stringValue else { throw GGUFError.wrongKeyType(key: "tokenizer.ggml.tokens", expected: "an array of strings") }
            return s
        }
        let n = texts.count
        func numbers(_ key: String) throws -> [GGUFValue]? {
            guard let values = gguf.metadata[key] else { return nil }
            guard let array = values.arrayValue, array.count == n else {
                throw LanguageModelError.invalidTokenizer("\(key) must be an array of \(n) numbers")
            }
            return array
        }
        scores = try numbers("tokenizer.ggml.scores")?.map { Float($0.doubleValue ?? 0) } ?? [Float](repeating: 0, count: n)
        var kinds = try numbers("tokenizer.ggml.token_type")?.map { TokenKind(rawValue: Int32($0.intValue ?? 1)) ?? .normal }
            ?? [TokenKind](repeating: .normal, count: n)
        var ids: [[UInt8]: Int32] = [:]
        for (i, t) in texts.enumerated() where ids[Array(t.utf8)] == nil { ids[Array(t.utf8)] = Int32(i) }
        idsByText = ids
        var ranks: [String: Int] = [:]
        for (i, m) in (gguf.metadata["tokenizer.ggml.merges"]?.arrayValue ?? []).enumerated() {
            if let s = m.stringValue, ranks[s] == nil { ranks[s] = i }
        }
        mergeRanks = ranks

        func tokenID(_ key: String) -> Int32? {
            guard let v = gguf.metadata[key]?.intValue, v >= 0, v < n else { return nil }
            return Int32(v)
        }
        bos = tokenID("tokenizer.ggml.bos_token_id")
        eos = tokenID("tokenizer.ggml.eos_token_id")
        unknown = tokenID("tokenizer.ggml.unknown_token_id")
        padding = tokenID("tokenizer.ggml.padding_token_id")
        // llama.cpp's defaults: SentencePiece adds BOS and a space prefix, byte-level BPE neither
        // (but Llama 3's pre-tokenizer adds BOS).
        addBOS = gguf.metadata["tokenizer.ggml.add_bos_token"]?.boolValue
            ?? (model == "llama" || PreTokenizer.llama3Names.contains(preTokenizer))
        addEOS = gguf.metadata["tokenizer.ggml.add_eos_token"]?.boolValue ?? false
        addSpacePrefix = gguf.metadata["tokenizer.ggml.add_space_prefix"]?.boolValue ?? (model == "llama")
        // As llama.cpp: tokens with these texts end generation and are control tokens, whatever their type.
        var endIDs = Set(eos.map { [$0] } ?? [])
        for (i, t) in texts.enumerated() where Self.endOfGenerationTexts.contains(Array(t.utf8)) {
            endIDs.insert(Int32(i))
            kinds[i] = .control
        }
        self.kinds = kinds
        endOfGeneration = endIDs
    }

    /// llama.cpp's end-of-generation markers recognised by text (`special_eog_ids`).
    static let endOfGenerationTexts: Set<[UInt8]> = Set([
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
        "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>",
    ].map { Array($0.utf8) })

    public func id(of text: String) -> Int32? { idsByText[Array(text.utf8)] }

    func id(ofBytes bytes: [UInt8]) -> Int32? { idsByText[bytes] }
}
