// Splitting text into words before byte-level BPE, as llama.cpp does for `tokenizer.ggml.pre`.
//
// llama.cpp applies a list of regexes in turn, each splitting the pieces the previous one produced
// (matches and the text between them both become pieces). The GPT-2 pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// is implemented by hand (as llama.cpp's `unicode_regex_split_custom_gpt2`), since Foundation's regex
// engine is not needed for it and lookahead must stop at the piece boundary. So is Llama 3's
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// (`unicode_regex_split_custom_llama3`), and Qwen2's, the same with single digits (`..._qwen2`).

enum PreTokenizer {
    enum Step: Equatable {
        case eachNumber, gpt2
        /// The Llama 3 pattern, numbers split into runs of at most `digits` (3: llama3, 1: qwen2).
        case llama3(digits: Int)
    }

    /// The split steps for a `tokenizer.ggml.pre` name; nil if unknown.
    static func steps(for name: String) -> [Step]? {
        switch name {
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva": [.eachNumber, .gpt2]
        case "gpt-2", "gpt2", "default", "mpt", "olmo", "jais": [.gpt2]
        case _ where llama3Names.contains(name): [.llama3(digits: 3)]
        case "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2": [.llama3(digits: 1)]
        default: nil
        }
    }

    /// Names llama.cpp treats as Llama 3's pre-tokenizer (`LLAMA_VOCAB_PRE_TYPE_LLAMA3`).
    static let llama3Names: Set<String> = ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"]

    /// Whether a word that is itself a token skips the merges (llama.cpp's `ignore_merges`, Llama 3).
    static func ignoresMerges(_ name: String) -> Bool { llama3Names.contains(name) }

    static func split(_ text: String, steps: [Step]) -> [[Unicode.Scalar]] {
        var pieces = [Array(text.unicodeScalars)]
        for step in steps {
            pieces = pieces.flatMap { piece -> [[Unicode.Scalar]] in
                switch step {
                case .eachNumber: splitEachNumber(piece)
                case .gpt2: splitGPT2(piece)
                case let .llama3(digits): splitLlama3(piece, digits: digits)
                }
            }
        }
        return pieces.filter { !$0.isEmpty }
    }

    /// `\p{N}`: every numeric character is a piece of its own; the runs between them are pieces too.
    static func splitEachNumber(_ s: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var out: [[Unicode.Scalar]] = [], run: [Unicode.Scalar] = []
        for c in s {
            if c.isNumber {
                if !run.isEmpty { out.append(run); run = [] }
                out.append([c])
            } else { run.append(c) }
        }
        if !run.isEmpty { out.append(run) }
        return out
    }

    static func splitGPT2(_ s: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var out: [[Unicode.Scalar]] = []
        var start = 0, pos = 0
        func emit(until end: Int) { out.append(Array(s[start..<end])); start = end; pos = end }
        func at(_ i: Int) -> Unicode.Scalar? { i < s.count ? s[i] : nil }
        while pos < s.count {
            let c = s[pos]
            // 's 't 're 've 'm 'll 'd
            if c == "'", let n = at(pos + 1) {
                if "stmd".unicodeScalars.contains(n) { emit(until: pos + 2); continue }
                if let n2 = at(pos + 2), (n == "r" && n2 == "e") || (n == "v" && n2 == "e") || (n == "l" && n2 == "l") {
                    emit(until: pos + 3); continue
                }
            }
            // An optional leading space, then a run of letters, of numbers, or of other non-space characters.
            let head = c == " " ? at(pos + 1) : c
            if let h = head, let run = CharacterRun(h) {
                var end = pos + (c == " " ? 1 : 0)
                while let x = at(end), CharacterRun(x) == run { end += 1 }
                emit(until: end); continue
            }
            var spaces = 0
            while let x = at(pos + spaces), x.isLlamaWhitespace { spaces += 1 }
            if spaces > 1, at(pos + spaces) != nil { emit(until: pos + spaces - 1); continue }  // \s+(?!\S)
            if spaces > 0 { emit(until: pos + spaces); continue }  // \s+
            emit(until: pos + 1)
        }
        return out
    }

    static func splitLlama3(_ s: [Unicode.Scalar], digits: Int) -> [[Unicode.Scalar]] {
        var out: [[Unicode.Scalar]] = []
        var start = 0, pos = 0
        func emit(until end: Int) { if end > start { out.append(Array(s[start..<end])) }; start = end; pos = end }
        func at(_ i: Int) -> Unicode.Scalar? { i < s.count ? s[i] : nil }
        func lower(_ i: Int) -> Unicode.Scalar? { at(i).map { $0.properties.lowercaseMapping.unicodeScalars.first ?? $0 } }
        func isLetter(_ i: Int) -> Bool { at(i)?.isLetter ?? false }
        func isNumber(_ i: Int) -> Bool { at(i)?.isNumber ?? false }
        func isNewline(_ c: Unicode.Scalar?) -> Bool { c == "\r" || c == "\n" }
        while pos < s.count {
            let c = s[pos]
            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if c == "'", let n = lower(pos + 1) {
                if "stmd".unicodeScalars.contains(n) { emit(until: pos + 2); continue }
                if let n2 = lower(pos + 2), (n == "r" && n2 == "e") || (n == "v" && n2 == "e") || (n == "l" && n2 == "l") {
                    emit(until: pos + 3); continue
                }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !isNewline(c), !c.isNumber, c.isLetter || isLetter(pos + 1) {
                var end = pos + 1
                while isLetter(end) { end += 1 }
                emit(until: end); continue
            }
            // \p{N}{1,digits}
            if c.isNumber {
                var end = pos
                while isNumber(end), end - pos < digits { end += 1 }
                emit(until: end); continue
            }
            // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
            let head = c == " " ? at(pos + 1) : c
            if let h = head, CharacterRun(h) == .other {
                var end = pos + (c == " " ? 1 : 0)
                while let x = at(end), CharacterRun(x) == .other { end += 1 }
                while isNewline(at(end)) { end += 1 }
                emit(until: end); continue
            }
            var spaces = 0, afterLastNewline = 0
            while let x = at(pos + spaces), x.isLlamaWhitespace {
                if isNewline(x) { afterLastNewline = pos + spaces + 1 }
                spaces += 1
            }
            if afterLastNewline > 0 { emit(until: afterLastNewline); continue }  // \s*[\r\n]+
            if spaces > 1, at(pos + spaces) != nil { emit(until: pos + spaces - 1); continue }  // \s+(?!\S)
            if spaces > 0 { emit(until: pos + spaces); continue }  // \s+
            emit(until: pos + 1)
        }
        return out
    }

    /// The three run classes of the GPT-2 pattern (whitespace and unassigned code points belong to none).
    enum CharacterRun: Equatable {
        case letters, numbers, other
        init?(_ c: Unicode.Scalar) {
            if c.isLetter { self = .letters } else if c.isNumber { self = .numbers }
            else if c.isLlamaWhitespace || c.properties.generalCategory == .unassigned { return nil }
            else { self = .other }
        }
    }
}

extension Unicode.Scalar {
    var isLetter: Bool {
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }

    var isNumber: Bool {
        switch properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }

    /// llama.cpp's whitespace set (`unicode_ranges_whitespace`).
    var isLlamaWhitespace: Bool {
        switch value {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: true
        default: false
        }
    }
}
