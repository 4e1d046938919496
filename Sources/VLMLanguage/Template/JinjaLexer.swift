// Template text -> tokens, with jinja2's whitespace control as Hugging Face configures it
// (trim_blocks and lstrip_blocks on, keep_trailing_newline off). The rules mirror jinja2's lexer:
//   - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` all after it.
//   - trim_blocks: one newline right after `%}` or `#}` is dropped (not after `}}`).
//   - lstrip_blocks: spaces and tabs from the start of a line up to `{%` or `{#` are dropped, unless
//     the tag is `{%+`.
//   - `\r\n` and `\r` become `\n`, and one trailing newline at the end of the template is dropped.

public struct JinjaToken: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case text(String)
        case blockBegin, blockEnd, variableBegin, variableEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        case op(String)
        case end
    }
    public var kind: Kind
    public var line: Int
}

struct JinjaLexer {
    private let source: [Unicode.Scalar]
    private var pos = 0
    private var line = 1
    private var tokens: [JinjaToken] = []
    /// Whether the last thing consumed ended a line (lstrip_blocks applies at the start of a template too).
    private var lineStarting = true

    static let operators = ["//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")",
                            "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"]

    init(_ text: String) {
        var normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        if normalized.hasSuffix("\n") { normalized.removeLast() }
        source = Array(normalized.unicodeScalars)
    }

    static func tokenize(_ text: String) throws -> [JinjaToken] {
        var lexer = JinjaLexer(text)
        try lexer.run()
        return lexer.tokens
    }

    private mutating func run() throws {
        while pos < source.count {
            guard let (tagStart, opener) = nextTagStart(from: pos) else {
                emitText(text(pos...))
                break
            }
            var afterOpener = tagStart + 2
            var sign: Unicode.Scalar?
            if afterOpener < source.count, source[afterOpener] == "-" || source[afterOpener] == "+" {
                sign = source[afterOpener]
                afterOpener += 1
            }
            let before = text(pos..<tagStart)
            if opener == "{%", let rawEnd = rawBlockStart(at: afterOpener) {
                emitText(strippedText(before, sign: sign, isVariable: false))
                lineStarting = source[rawEnd - 1] == "\n"
                pos = rawEnd
                try lexRawBody()
                continue
            }
            emitText(strippedText(before, sign: sign, isVariable: opener == "{{"))
            lineStarting = false
            pos = afterOpener
            switch opener {
            case "{#": try skipComment()
            case "{%": try lexTag(begin: .blockBegin, end: .blockEnd, closer: "%}")
            default: try lexTag(begin: .variableBegin, end: .variableEnd, closer: "}}")
            }
        }
        tokens.append(JinjaToken(kind: .end, line: line))
    }

    /// The earliest `{{`, `{%` or `{#` at or after `from`.
    private func nextTagStart(from start: Int) -> (Int, String)? {
        var i = start
        while i + 1 < source.count {
            if source[i] == "{" {
                switch source[i + 1] {
                case "{": return (i, "{{")
                case "%": return (i, "{%")
                case "#": return (i, "{#")
                default: break
                }
            }
            i += 1
        }
        return nil
    }

    /// The text before a tag, after the tag's whitespace control.
    private func strippedText(_ text: String, sign: Unicode.Scalar?, isVariable: Bool) -> String {
        var scalars = Array(text.unicodeScalars)
        if sign == "-" {
            while let last = scalars.last, last.isPythonWhitespace { scalars.removeLast() }
        } else if sign != "+", !isVariable {
            let lineStart = (scalars.lastIndex(of: "\n") ?? -1) + 1
            let tail = scalars[lineStart...]
            if (lineStart > 0 || lineStarting), !tail.isEmpty, tail.allSatisfy(\.isPythonWhitespace) {
                scalars.removeSubrange(lineStart...)
            }
        }
        var s = ""
        s.unicodeScalars.append(contentsOf: scalars)
        return s
    }

    private mutating func emitText(_ text: String) {
        guard !text.isEmpty else { return }
        tokens.append(JinjaToken(kind: .text(text), line: line))
        line += text.reduce(0) { $0 + ($1 == "\n" ? 1 : 0) }
    }

    // MARK: Comments and raw blocks

    private mutating func skipComment() throws {
        let start = pos
        for i in start..<source.count where consumeCloser("#}", at: i, trims: true) {
            countLines(start, i)
            return
        }
        throw JinjaError.syntax("Missing end of comment tag", line: line)
    }

    /// If `{% raw %}` starts here (after `{%` and its sign), the index just after it.
    private func rawBlockStart(at start: Int) -> Int? {
        var i = start
        while i < source.count, source[i].isPythonWhitespace { i += 1 }
        guard matches("raw", at: i) else { return nil }
        i += 3
        while i < source.count, source[i].isPythonWhitespace { i += 1 }
        if matches("-%}", at: i) {
            i += 3
            while i < source.count, source[i].isPythonWhitespace { i += 1 }
            return i
        }
        return matches("%}", at: i) ? i + 2 : nil  // jinja2 trims no newline after `{% raw %}`
    }

    /// The verbatim text up to `{% endraw %}`, then the position after it.
    private mutating func lexRawBody() throws {
        var i = pos
        while let (tagStart, opener) = nextTagStart(from: i) {
            i = tagStart + 1
            guard opener == "{%" else { continue }
            var j = tagStart + 2
            var sign: Unicode.Scalar?
            if j < source.count, source[j] == "-" || source[j] == "+" { sign = source[j]; j += 1 }
            while j < source.count, source[j].isPythonWhitespace { j += 1 }
            guard matches("endraw", at: j) else { continue }
            j += 6
            while j < source.count, source[j].isPythonWhitespace { j += 1 }
            let body = strippedText(text(pos..<tagStart), sign: sign, isVariable: false)
            guard consumeCloser("%}", at: j, trims: true) else { continue }
            emitText(body)
            return
        }
        throw JinjaError.syntax("Missing end of raw directive", line: line)
    }

    // MARK: Inside `{% %}` and `{{ }}`

    private mutating func lexTag(begin: JinjaToken.Kind, end: JinjaToken.Kind, closer: String) throws {
        tokens.append(JinjaToken(kind: begin, line: line))
        var brackets: [Unicode.Scalar] = []
        while true {
            skipWhitespace()
            guard pos < source.count else {
                throw JinjaError.syntax("unexpected end of template, expected '\(closer)'", line: line)
            }
            if brackets.isEmpty, try lexTagEnd(end: end, closer: closer) { return }
            let c = source[pos]
            if ("0"..."9").contains(c) {
                try lexNumber()
            } else if c == "_" || (c.isASCII && c.properties.isAlphabetic) {
                let start = pos
                while pos < source.count, source[pos] == "_" || (source[pos].isASCII && source[pos].properties.isAlphabetic)
                        || ("0"..."9").contains(source[pos]) { pos += 1 }
                tokens.append(JinjaToken(kind: .name(text(start..<pos)), line: line))
            } else if c == "'" || c == "\"" {
                try lexString(quote: c)
            } else if let op = JinjaLexer.operators.first(where: { matches($0, at: pos) }) {
                try balance(op, &brackets)
                tokens.append(JinjaToken(kind: .op(op), line: line))
                pos += op.unicodeScalars.count
            } else {
                throw JinjaError.syntax("unexpected char '\(c)'", line: line)
            }
        }
    }

    /// Consumes the tag's closer when it is next and emits the end token.
    private mutating func lexTagEnd(end: JinjaToken.Kind, closer: String) throws -> Bool {
        guard consumeCloser(closer, at: pos, trims: end == .blockEnd) else { return false }
        tokens.append(JinjaToken(kind: end, line: line))
        return true
    }

    /// Consumes `-%}`, `+%}` or `%}` (for `closer` "%}") at `i` with its whitespace control: `-` eats
    /// the whitespace after it, trim_blocks (`trims`) one newline, `+` nothing. False when there is none.
    private mutating func consumeCloser(_ closer: String, at i: Int, trims: Bool) -> Bool {
        if matches("-" + closer, at: i) {
            pos = i + 3
            skipWhitespace()
        } else if trims, matches("+" + closer, at: i) {
            pos = i + 3
        } else if matches(closer, at: i) {
            pos = i + 2
            if trims { trimNewlineAfterBlock() }
        } else {
            return false
        }
        lineStarting = source[pos - 1] == "\n"
        return true
    }

    private func balance(_ op: String, _ stack: inout [Unicode.Scalar]) throws {
        switch op {
        case "(": stack.append(")")
        case "[": stack.append("]")
        case "{": stack.append("}")
        case ")", "]", "}":
            guard let expected = stack.popLast() else { throw JinjaError.syntax("unexpected '\(op)'", line: line) }
            guard String(expected) == op else { throw JinjaError.syntax("unexpected '\(op)', expected '\(expected)'", line: line) }
        default: break
        }
    }

    private mutating func lexNumber() throws {
        let start = pos
        func digits() { while pos < source.count, ("0"..."9").contains(source[pos]) || (source[pos] == "_" && pos + 1 < source.count && ("0"..."9").contains(source[pos + 1])) { pos += 1 } }
        digits()
        var isFloat = false
        if pos + 1 < source.count, source[pos] == ".", ("0"..."9").contains(source[pos + 1]) {
            isFloat = true
            pos += 1
            digits()
        }
        if pos < source.count, source[pos] == "e" || source[pos] == "E" {
            var j = pos + 1
            if j < source.count, source[j] == "+" || source[j] == "-" { j += 1 }
            if j < source.count, ("0"..."9").contains(source[j]) {
                isFloat = true
                pos = j
                digits()
            }
        }
        let literal = text(start..<pos).replacingOccurrences(of: "_", with: "")
        if isFloat, let d = Double(literal) {
            tokens.append(JinjaToken(kind: .float(d), line: line))
        } else if let i = Int(literal) {
            tokens.append(JinjaToken(kind: .integer(i), line: line))
        } else {
            throw JinjaError.syntax("number out of range: \(literal)", line: line)
        }
    }

    /// A quoted string with Python's escapes (`\n`, `\t`, `\'`, `\xhh`, `\uhhhh`...); unknown escapes stay.
    private mutating func lexString(quote: Unicode.Scalar) throws {
        let startLine = line
        pos += 1
        var value = String.UnicodeScalarView()
        while pos < source.count, source[pos] != quote {
            var c = source[pos]
            if c == "\n" { line += 1 }
            if c == "\\", pos + 1 < source.count {
                pos += 1
                c = source[pos]
                if let simple = ["n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", "\"": "\"", "a": "\u{07}",
                                 "b": "\u{08}", "f": "\u{0C}", "v": "\u{0B}", "0": "\0", "\n": ""][String(c)] {
                    value.append(contentsOf: simple.unicodeScalars)
                } else if let width = ["x": 2, "u": 4, "U": 8][String(c)], pos + width < source.count,
                          let code = UInt32(text((pos + 1)...(pos + width)), radix: 16),
                          let scalar = Unicode.Scalar(code) {
                    value.append(scalar)
                    pos += width
                } else {
                    value.append("\\")
                    value.append(c)
                }
            } else {
                value.append(c)
            }
            pos += 1
        }
        guard pos < source.count else { throw JinjaError.syntax("unterminated string", line: startLine) }
        pos += 1
        tokens.append(JinjaToken(kind: .string(String(value)), line: startLine))
    }

    // MARK: Helpers

    private func text<R: RangeExpression<Int>>(_ range: R) -> String {
        var s = ""
        s.unicodeScalars.append(contentsOf: source[range])
        return s
    }

    private func matches(_ s: String, at i: Int) -> Bool {
        var j = i
        for c in s.unicodeScalars {
            guard j < source.count, source[j] == c else { return false }
            j += 1
        }
        return true
    }

    private mutating func skipWhitespace() {
        while pos < source.count, source[pos].isPythonWhitespace {
            if source[pos] == "\n" { line += 1 }
            pos += 1
        }
    }

    /// trim_blocks: the newline right after a block or comment tag belongs to the tag.
    private mutating func trimNewlineAfterBlock() {
        if pos < source.count, source[pos] == "\n" { pos += 1; line += 1 }
    }

    private mutating func countLines(_ from: Int, _ to: Int) {
        line += source[from..<to].reduce(0) { $0 + ($1 == "\n" ? 1 : 0) }
    }
}
