// Text <-> token ids for a GGUF model, following llama.cpp's `llama_tokenize` / `llama_token_to_piece`.

/// Immutable after init, so freely shared between threads.
public struct Tokenizer: Sendable {
    public let vocabulary: Vocabulary
    private let algorithm: Algorithm
    /// Tokens matched literally in text before splitting, longest text first (llama.cpp's special-token cache).
    private let specialTokens: [(id: Int32, text: String)]

    private enum Algorithm: Sendable {
        case sentencePiece
        case bytePair(BytePairTokenizer)
    }

    public init(vocabulary: Vocabulary) throws {
        self.vocabulary = vocabulary
        algorithm = vocabulary.model == "llama" ? .sentencePiece : .bytePair(try BytePairTokenizer(vocabulary: vocabulary))
        specialTokens = vocabulary.texts.enumerated()
            .filter { [.control, .userDefined, .unknown].contains(vocabulary.kinds[$0.offset]) && !$0.element.isEmpty }
            .map { (Int32($0.offset), $0.element) }
            .sorted { $0.text.utf8.count != $1.text.utf8.count ? $0.text.utf8.count > $1.text.utf8.count : $0.id < $1.id }
    }

    /// Token ids of `text`. `addSpecial` adds BOS/EOS as the model asks; `parseSpecial` matches control
    /// tokens such as `<|im_start|>` written in the text (user-defined tokens are always matched).
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = false) -> [Int32] {
        var output: [Int32] = []
        if addSpecial, vocabulary.addBOS, let bos = vocabulary.bos { output.append(bos) }
        var previousWasSpecial = true  // SentencePiece prefixes a space to text at the start or after a special token
        for fragment in partition(text, parseSpecial: parseSpecial) {
            switch fragment {
            case let .token(id):
                output.append(id)
                previousWasSpecial = true
            case let .text(raw):
                switch algorithm {
                case .sentencePiece:
                    let prefixed = vocabulary.addSpacePrefix && previousWasSpecial ? " " + raw : raw
                    output += SentencePieceTokenizer(vocabulary: vocabulary)
                        .tokenize(prefixed.replacingAll(" ", with: "\u{2581}"))
                case let .bytePair(bpe):
                    output += bpe.tokenize(raw)
                }
                previousWasSpecial = false
            }
        }
        if addSpecial, vocabulary.addEOS, let eos = vocabulary.eos { output.append(eos) }
        return output
    }

    private enum Fragment { case text(String), token(Int32) }

    /// Splits text at occurrences of special tokens (each token in turn, longest first, as llama.cpp).
    private func partition(_ text: String, parseSpecial: Bool) -> [Fragment] {
        guard !text.isEmpty else { return [] }
        var fragments: [Fragment] = [.text(text)]
        for special in specialTokens {
            let kind = vocabulary.kinds[Int(special.id)]
            if !parseSpecial && (kind == .control || kind == .unknown) { continue }
            let needle = Array(special.text.utf8)
            fragments = fragments.flatMap { fragment -> [Fragment] in
                guard case let .text(raw) = fragment else { return [fragment] }
                let bytes = Array(raw.utf8)
                var pieces: [Fragment] = []
                var start = 0
                for match in bytes.occurrences(of: needle) {
                    if match > start { pieces.append(.text(String(decoding: bytes[start..<match], as: UTF8.self))) }
                    pieces.append(.token(special.id))
                    start = match + needle.count
                }
                if start < bytes.count { pieces.append(.text(String(decoding: bytes[start...], as: UTF8.self))) }
                return pieces
            }
        }
        return fragments
    }

    /// The bytes token `id` stands for. Control tokens give their text only when `renderSpecial`.
    public func piece(_ id: Int32, renderSpecial: Bool = false) -> [UInt8] {
        guard id >= 0, Int(id) < vocabulary.count else { return [] }
        let text = vocabulary.texts[Int(id)]
        switch vocabulary.kinds[Int(id)] {
        case .control: return renderSpecial ? Array(text.utf8) : []
        case .userDefined: return Array(text.utf8)
        case .unknown: return renderSpecial ? Array(text.utf8) : Array("\u{2585}".utf8)
        case .byte:
            if vocabulary.model == "llama", text.hasPrefix("<0x"), text.hasSuffix(">"),
               let b = UInt8(text.dropFirst(3).dropLast(), radix: 16) { return [b] }
            return ByteEncoding.bytes(of: text)
        case .normal, .undefined, .unused:
            return vocabulary.model == "llama"
                ? Array(text.replacingAll("\u{2581}", with: " ").utf8) : ByteEncoding.bytes(of: text)
        }
    }

    /// The text of a token sequence (invalid UTF-8 replaced by U+FFFD).
    public func decode(_ ids: [Int32], renderSpecial: Bool = false) -> String {
        String(decoding: ids.flatMap { piece($0, renderSpecial: renderSpecial) }, as: UTF8.self)
    }
}

extension String {
    /// Byte-wise replacement (no Unicode canonical equivalence, unlike Foundation's).
    func replacingAll(_ target: String, with replacement: String) -> String {
        let bytes = Array(utf8), needle = Array(target.utf8)
        var out: [UInt8] = [], start = 0
        for match in bytes.occurrences(of: needle) {
            out += bytes[start..<match]
            out += replacement.utf8
            start = match + needle.count
        }
        out += bytes[start...]
        return String(decoding: out, as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    /// Start offsets of the non-overlapping occurrences of `needle`, left to right.
    func occurrences(of needle: [UInt8]) -> [Int] {
        guard !needle.isEmpty, needle.count <= count else { return [] }
        var found: [Int] = [], i = 0
        while i + needle.count <= count {
            if self[i] == needle[0], self[i..<i + needle.count].elementsEqual(needle) {
                found.append(i); i += needle.count
            } else { i += 1 }
        }
        return found
    }
}

/// Assembles streamed token bytes into text, holding back an incomplete UTF-8 sequence at the end.
public struct UTF8StreamDecoder: Sendable {
    private var pending: [UInt8] = []
    public init() {}

    /// Appends bytes; returns the text completed by them (possibly empty).
    public mutating func append(_ bytes: [UInt8]) -> String {
        pending += bytes
        var complete = pending.count
        // Find the start of a trailing, unfinished sequence (at most 3 bytes back).
        var i = pending.count - 1, back = 0
        while i >= 0, back < 4, pending[i] & 0xC0 == 0x80 { i -= 1; back += 1 }
        if i >= 0, pending[i] & 0x80 != 0, utf8Length(leadByte: pending[i]) > pending.count - i { complete = i }
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Whatever remains (an incomplete sequence decodes to U+FFFD).
    public mutating func flush() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }
}
