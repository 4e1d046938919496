// Byte-level BPE (GPT-2 style, llama.cpp's `llm_tokenizer_bpe`): each pre-tokenized word is mapped
// byte-by-byte to printable code points, then adjacent symbols are merged lowest merge-rank first.

struct BytePairTokenizer {
    let vocabulary: Vocabulary
    let steps: [PreTokenizer.Step]
    /// A word that is a token as a whole is that token, unmerged (Llama 3).
    let ignoresMerges: Bool

    init(vocabulary: Vocabulary) throws {
        guard let steps = PreTokenizer.steps(for: vocabulary.preTokenizer) else {
            throw LanguageModelError.invalidTokenizer("pre-tokenizer '\(vocabulary.preTokenizer)' is not supported")
        }
        self.vocabulary = vocabulary
        self.steps = steps
        ignoresMerges = PreTokenizer.ignoresMerges(vocabulary.preTokenizer)
    }

    private struct Bigram: Comparable {
        let left: Int, right: Int, rank: Int, text: String
        /// Heap order: lowest rank first, then the leftmost pair.
        static func < (a: Bigram, b: Bigram) -> Bool { a.rank != b.rank ? a.rank < b.rank : a.left < b.left }
    }

    func tokenize(_ text: String) -> [Int32] {
        var output: [Int32] = []
        for word in PreTokenizer.split(text, steps: steps) {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: word)
            let symbols = String(view).utf8.map { String(ByteEncoding.scalar(for: $0)) }
            if ignoresMerges, let id = vocabulary.id(of: symbols.joined()) { output.append(id); continue }
            output += merge(symbols)
        }
        return output
    }

    /// Merges the symbols of one word and maps the results to ids.
    private func merge(_ initial: [String]) -> [Int32] {
        var symbols = initial
        var next = Array(1...symbols.count).map { $0 == symbols.count ? -1 : $0 }
        var previous = Array(-1..<(symbols.count - 1))
        var queue = Heap<Bigram>()
        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0, let rank = vocabulary.mergeRanks[symbols[l] + " " + symbols[r]] else { return }
            queue.push(Bigram(left: l, right: r, rank: rank, text: symbols[l] + symbols[r]))
        }
        for i in 0..<max(0, symbols.count - 1) { tryAdd(i, i + 1) }
        while let b = queue.pop() {
            guard !symbols[b.left].isEmpty, !symbols[b.right].isEmpty, symbols[b.left] + symbols[b.right] == b.text else { continue }
            symbols[b.left] = b.text
            symbols[b.right] = ""
            next[b.left] = next[b.right]
            if next[b.right] >= 0 { previous[next[b.right]] = b.left }
            tryAdd(previous[b.left], b.left)
            tryAdd(b.left, next[b.left])
        }
        var ids: [Int32] = []
        var i = 0
        while i >= 0 {
            if let id = vocabulary.id(of: symbols[i]) { ids.append(id) }
            else {  // as llama.cpp: fall back to single-character tokens that exist
                for c in symbols[i].unicodeScalars { if let id = vocabulary.id(of: String(c)) { ids.append(id) } }
            }
            i = next[i]
        }
        return ids
    }
}

/// GPT-2's reversible map from bytes to printable code points (`bytes_to_unicode`).
enum ByteEncoding {
    private static let table: [Unicode.Scalar] = {
        var map = [Unicode.Scalar](repeating: " ", count: 256)
        var extra: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable { map[b] = Unicode.Scalar(UInt32(b))! } else { map[b] = Unicode.Scalar(extra)!; extra += 1 }
        }
        return map
    }()
    private static let inverse: [UInt32: UInt8] = {
        var m: [UInt32: UInt8] = [:]
        for (b, s) in table.enumerated() { m[s.value] = UInt8(b) }
        return m
    }()

    static func scalar(for byte: UInt8) -> Unicode.Scalar { table[Int(byte)] }

    /// The bytes a byte-encoded token text stands for (characters outside the map are kept as UTF-8).
    static func bytes(of text: String) -> [UInt8] {
        var out: [UInt8] = []
        for s in text.unicodeScalars {
            if let b = inverse[s.value] { out.append(b) } else { out += Array(String(s).utf8) }
        }
        return out
    }
}
