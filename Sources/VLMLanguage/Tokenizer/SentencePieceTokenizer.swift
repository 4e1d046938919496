// llama.cpp's SentencePiece-style tokenizer (`llm_tokenizer_spm`): start from single characters and
// repeatedly merge the adjacent pair whose concatenation is the highest-scoring vocabulary entry.
// Pieces that never became a token fall back to `<0xXX>` byte tokens.

struct SentencePieceTokenizer {
    let vocabulary: Vocabulary

    private struct Symbol {
        var start: Int, length: Int  // byte range in the text
        var previous: Int, next: Int
    }

    private struct Bigram: Comparable {
        let left: Int, right: Int, score: Float, length: Int
        /// Heap order: higher score first, then the leftmost pair.
        static func < (a: Bigram, b: Bigram) -> Bool {
            a.score != b.score ? a.score > b.score : a.left < b.left
        }
    }

    /// Tokenizes already-escaped text (spaces replaced by U+2581).
    func tokenize(_ text: String) -> [Int32] {
        let bytes = Array(text.utf8)
        var symbols: [Symbol] = []
        var i = 0
        while i < bytes.count {
            let length = min(utf8Length(leadByte: bytes[i]), bytes.count - i)
            symbols.append(Symbol(start: i, length: length, previous: symbols.count - 1, next: symbols.count + 1))
            i += length
        }
        guard !symbols.isEmpty else { return [] }
        symbols[symbols.count - 1].next = -1

        var queue = Heap<Bigram>()
        var mergedFrom: [[UInt8]: (Int, Int)] = [:]
        func piece(_ start: Int, _ length: Int) -> [UInt8] { Array(bytes[start..<start + length]) }
        func tryAddBigram(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0 else { return }
            let text = piece(symbols[left].start, symbols[left].length + symbols[right].length)
            guard let id = vocabulary.id(ofBytes: text) else { return }
            queue.push(Bigram(left: left, right: right, score: vocabulary.scores[Int(id)], length: text.count))
            mergedFrom[text] = (left, right)
        }
        for i in 1..<symbols.count { tryAddBigram(i - 1, i) }

        while let bigram = queue.pop() {
            let left = symbols[bigram.left], right = symbols[bigram.right]
            // Skip pairs made stale by an earlier merge.
            guard left.length > 0, right.length > 0, left.length + right.length == bigram.length else { continue }
            symbols[bigram.left].length += right.length
            symbols[bigram.right].length = 0
            symbols[bigram.left].next = right.next
            if right.next >= 0 { symbols[right.next].previous = bigram.left }
            tryAddBigram(left.previous, bigram.left)
            tryAddBigram(bigram.left, right.next)
        }

        var output: [Int32] = []
        func resegment(_ s: Symbol) {
            let text = piece(s.start, s.length)
            if let id = vocabulary.id(ofBytes: text) { output.append(id); return }
            if let (l, r) = mergedFrom[text] { resegment(symbols[l]); resegment(symbols[r]); return }
            for b in bytes[s.start..<s.start + s.length] { output.append(byteToken(b)) }
        }
        var index = 0
        while index >= 0 { resegment(symbols[index]); index = symbols[index].next }
        return output
    }

    func byteToken(_ b: UInt8) -> Int32 {
        let hex = String(b, radix: 16, uppercase: true)
        return vocabulary.id(of: "<0x\(hex.count == 1 ? "0" + hex : hex)>") ?? vocabulary.unknown ?? 0
    }
}

/// Bytes in the UTF-8 sequence a lead byte starts (1 for stray continuation bytes, as llama.cpp).
func utf8Length(leadByte b: UInt8) -> Int {
    switch b >> 4 {
    case 0xC, 0xD: 2
    case 0xE: 3
    case 0xF: 4
    default: 1
    }
}
