import CZlib
import Foundation

/// CLIP's byte-level BPE tokenizer, producing the same ids as open_clip's SimpleTokenizer
/// (see TextCleaning for the text normalisation and its one approximation, ftfy).
///
/// Vocabulary (49,408 ids): the 256 byte symbols, the same 256 with the end-of-word marker `</w>`,
/// one id per merge rule (48,894 rules from `bpe_simple_vocab_16e6.txt.gz`), then
/// `<start_of_text>` (49406) and `<end_of_text>` (49407).
public struct CLIPTokenizer: Sendable {
    public static let defaultContextLength = 77
    public static let mergeCount = 49152 - 256 - 2

    public let startOfText: Int32
    public let endOfText: Int32
    public var vocabularySize: Int { symbols.count }

    /// id → symbol string (bytes shown through the byte-to-Unicode table, as in the merges file).
    private let symbols: [String]
    private let ids: [String: Int32]
    /// (left id, right id) → (merge priority, merged id).
    private let merges: [MergePair: (rank: Int32, merged: Int32)]
    /// Byte value → id of its symbol (add 256 for the `</w>` form).
    private let byteSymbol: [Int32]
    /// Symbol character → byte value, for decoding.
    private let symbolByte: [Unicode.Scalar: UInt8]

    private struct MergePair: Hashable { let left: Int32, right: Int32 }

    /// Loads the shipped vocabulary (`Resources/bpe_simple_vocab_16e6.txt.gz`), or `vocabulary` if given.
    public init(vocabulary: URL? = nil) throws {
        guard let url = vocabulary ?? Bundle.module.url(forResource: "Resources/bpe_simple_vocab_16e6.txt", withExtension: "gz")
                ?? Bundle.module.url(forResource: "bpe_simple_vocab_16e6.txt", withExtension: "gz")
        else { throw CLIPError.invalidInput("CLIP BPE vocabulary resource not found") }
        let text = try Self.gunzip(url)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > Self.mergeCount else {
            throw CLIPError.invalidInput("BPE vocabulary \(url.path) has \(lines.count) lines, expected more than \(Self.mergeCount)")
        }
        // The first line is a version header; the next 48,894 are "left right" merge rules in priority order.
        let rules = try lines[1...Self.mergeCount].map { line -> (String, String) in
            let parts = line.split(separator: " ")
            guard parts.count == 2 else { throw CLIPError.invalidInput("malformed BPE merge rule '\(line)'") }
            return (String(parts[0]), String(parts[1]))
        }

        let byteAlphabet = Self.byteAlphabet()
        var symbols = byteAlphabet.map { String($0.symbol) }
        symbols += symbols.map { $0 + "</w>" }
        symbols += rules.map { $0.0 + $0.1 }
        symbols += ["<start_of_text>", "<end_of_text>"]
        var ids: [String: Int32] = [:]
        for (id, symbol) in symbols.enumerated() { ids[symbol] = Int32(id) }  // later duplicates win, as in Python's dict
        var merges: [MergePair: (Int32, Int32)] = [:]
        for (rank, rule) in rules.enumerated() {
            guard let left = ids[rule.0], let right = ids[rule.1], let merged = ids[rule.0 + rule.1] else {
                throw CLIPError.invalidInput("BPE merge rule '\(rule.0) \(rule.1)' uses an unknown symbol")
            }
            let pair = MergePair(left: left, right: right)
            if merges[pair] == nil { merges[pair] = (Int32(rank), merged) }
        }
        var byteSymbol = [Int32](repeating: 0, count: 256)
        var symbolByte: [Unicode.Scalar: UInt8] = [:]
        for (id, entry) in byteAlphabet.enumerated() {
            byteSymbol[Int(entry.byte)] = Int32(id)
            symbolByte[entry.symbol] = entry.byte
        }
        self.symbols = symbols
        self.ids = ids
        self.merges = merges
        self.byteSymbol = byteSymbol
        self.symbolByte = symbolByte
        startOfText = ids["<start_of_text>"]!
        endOfText = ids["<end_of_text>"]!
    }

    /// Token ids of `text` without start/end markers.
    public func encode(_ text: String) -> [Int32] {
        var result: [Int32] = []
        for piece in Self.split(TextCleaning.clean(text)) {
            if piece == "<start_of_text>" { result.append(startOfText); continue }
            if piece == "<end_of_text>" { result.append(endOfText); continue }
            result += bytePairEncode(Array(piece.utf8))
        }
        return result
    }

    /// open_clip's `tokenizer(text)`: [SOT] + ids + [EOT], truncated to `contextLength` with EOT kept
    /// as the last id, then zero-padded to exactly `contextLength` ids.
    public func tokenize(_ text: String, contextLength: Int = defaultContextLength) -> [Int32] {
        precondition(contextLength >= 2, "context length must hold the start and end markers")
        var tokens = [startOfText] + encode(text) + [endOfText]
        if tokens.count > contextLength {
            tokens.removeLast(tokens.count - contextLength)
            tokens[contextLength - 1] = endOfText
        }
        return tokens + [Int32](repeating: 0, count: contextLength - tokens.count)
    }

    /// Text for token ids: `</w>` becomes a space, invalid UTF-8 becomes U+FFFD (open_clip's decode).
    /// Ids outside the vocabulary are skipped.
    public func decode(_ tokens: [Int32]) -> String {
        var bytes: [UInt8] = []
        for token in tokens where token >= 0 && Int(token) < symbols.count {
            for scalar in symbols[Int(token)].unicodeScalars {
                if let byte = symbolByte[scalar] { bytes.append(byte) } else { bytes += Array(String(scalar).utf8) }
            }
        }
        return Self.replacingEndOfWord(String(decoding: bytes, as: UTF8.self))
    }

    /// Replaces every "</w>" with a space, scalar by scalar: String's own replacement works on
    /// grapheme clusters and misses a marker followed by a combining mark ("न</w>्").
    private static func replacingEndOfWord(_ text: String) -> String {
        let marker = Array("</w>".unicodeScalars)
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if i + marker.count <= scalars.count && Array(scalars[i..<i + marker.count]) == marker {
                out.append(" ")
                i += marker.count
            } else {
                out.append(scalars[i])
                i += 1
            }
        }
        return String(out)
    }

    // MARK: - BPE

    /// Applies merge rules to one pre-token, lowest rank first, all occurrences left to right each time.
    private func bytePairEncode(_ bytes: [UInt8]) -> [Int32] {
        guard !bytes.isEmpty else { return [] }
        var word = bytes.map { byteSymbol[Int($0)] }
        word[word.count - 1] += 256  // the last symbol carries the end-of-word marker
        while word.count > 1 {
            var best: (rank: Int32, left: Int32, right: Int32, merged: Int32)?
            for i in 0..<(word.count - 1) {
                if let merge = merges[MergePair(left: word[i], right: word[i + 1])], merge.rank < (best?.rank ?? .max) {
                    best = (merge.rank, word[i], word[i + 1], merge.merged)
                }
            }
            guard let best else { break }
            var merged: [Int32] = []
            merged.reserveCapacity(word.count)
            var i = 0
            while i < word.count {
                if i + 1 < word.count && word[i] == best.left && word[i + 1] == best.right {
                    merged.append(best.merged)
                    i += 2
                } else {
                    merged.append(word[i])
                    i += 1
                }
            }
            word = merged
        }
        return word
    }

    // MARK: - Pre-tokenisation

    /// The pieces matched by open_clip's pattern, in order (whitespace between them dropped):
    /// `<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
    static func split(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var pieces: [String] = []
        var i = 0
        func piece(_ range: Range<Int>) -> String { String(String.UnicodeScalarView(s[range])) }
        func hasPrefix(_ literal: String, at index: Int) -> Bool {
            let l = Array(literal.unicodeScalars)
            return index + l.count <= s.count && Array(s[index..<index + l.count]) == l
        }
        outer: while i < s.count {
            for literal in ["<start_of_text>", "<end_of_text>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"] where hasPrefix(literal, at: i) {
                let length = literal.unicodeScalars.count
                pieces.append(piece(i..<i + length))
                i += length
                continue outer
            }
            let start = i
            switch characterClass(s[i]) {
            case .letter:
                while i < s.count && characterClass(s[i]) == .letter { i += 1 }
            case .number:
                i += 1
            case .other:
                while i < s.count && characterClass(s[i]) == .other { i += 1 }
            case .whitespace:
                i += 1
                continue outer
            }
            pieces.append(piece(start..<i))
        }
        return pieces
    }

    private enum CharacterClass { case letter, number, whitespace, other }

    private static func characterClass(_ scalar: Unicode.Scalar) -> CharacterClass {
        if scalar.properties.isWhitespace { return .whitespace }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    // MARK: - Vocabulary file

    /// GPT-2's reversible byte → printable-character table, in vocabulary order: the printable
    /// Latin-1 bytes map to themselves, the other 68 bytes to U+0100 onwards.
    private static func byteAlphabet() -> [(byte: UInt8, symbol: Unicode.Scalar)] {
        let printable = Array(33...126) + Array(161...172) + Array(174...255)
        var table = printable.map { (UInt8($0), Unicode.Scalar(UInt32($0))!) }
        var next: UInt32 = 256
        for byte in 0...255 where !printable.contains(byte) {
            table.append((UInt8(byte), Unicode.Scalar(next)!))
            next += 1
        }
        return table
    }

    private static func gunzip(_ url: URL) throws -> String {
        let compressed: Data
        do { compressed = try Data(contentsOf: url) } catch {
            throw CLIPError.invalidInput("cannot read BPE vocabulary \(url.path)")
        }
        var stream = z_stream()
        // 15 + 32: zlib window bits with automatic gzip/zlib header detection.
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw CLIPError.invalidInput("zlib initialisation failed")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let status: Int32 = compressed.withUnsafeBytes { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(input.count)
            var status: Int32 = Z_OK
            while status == Z_OK {
                status = chunk.withUnsafeMutableBufferPointer { buffer in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = uInt(buffer.count)
                    let result = inflate(&stream, Z_NO_FLUSH)
                    output.append(buffer.baseAddress!, count: buffer.count - Int(stream.avail_out))
                    return result
                }
                if output.count > 64 << 20 { return Z_DATA_ERROR }  // the real file inflates to ~1.4 MB
            }
            return status
        }
        guard status == Z_STREAM_END else { throw CLIPError.invalidInput("BPE vocabulary \(url.path) is not valid gzip data") }
        return String(decoding: output, as: UTF8.self)
    }
}
