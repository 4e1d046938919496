// Python's behaviour where templates rely on it: arithmetic (floor division, overflow as an error),
// int() conversion, str methods (strip, split, replace, title, format), json.dumps and strftime.
import Foundation

enum JinjaArithmetic {
    static func apply(_ op: String, _ l: JinjaValue, _ r: JinjaValue, limits: JinjaLimits) throws -> JinjaValue {
        if op == "~" { return try sized(.string(l.string + r.string), limits) }
        for case .undefined(let hint) in [l, r] { throw JinjaError.undefined(hint) }
        switch (op, l, r) {
        case ("+", .string(let a), .string(let b)): return try sized(.string(a + b), limits)
        case ("+", .list(let a), .list(let b)): return try sized(.list(a + b), limits)
        case ("+", .tuple(let a), .tuple(let b)): return try sized(.tuple(a + b), limits)
        case ("*", .string(let s), _) where r.integer != nil: return try repeated(.string(s), r.integer!, limits)
        case ("*", _, .string(let s)) where l.integer != nil: return try repeated(.string(s), l.integer!, limits)
        case ("*", .list, _) where r.integer != nil: return try repeated(l, r.integer!, limits)
        default: break
        }
        if let a = l.integer, let b = r.integer, op != "/" { return try integer(op, a, b) }
        guard let a = l.number, let b = r.number else {
            throw JinjaError.runtime("unsupported operand type(s) for \(op): '\(l.typeName)' and '\(r.typeName)'")
        }
        switch op {
        case "+": return .double(a + b)
        case "-": return .double(a - b)
        case "*": return .double(a * b)
        case "/":
            guard b != 0 else { throw JinjaError.runtime("division by zero") }
            return .double(a / b)
        case "//":
            guard b != 0 else { throw JinjaError.runtime("float floor division by zero") }
            return .double((a / b).rounded(.down))
        case "%":
            guard b != 0 else { throw JinjaError.runtime("float modulo") }
            return .double(a - b * (a / b).rounded(.down))
        default: return .double(Foundation.pow(a, b))
        }
    }

    /// from, from + step, ... short of `to` (Python's range): stops instead of overflowing on huge steps.
    static func steps(from: Int, to: Int, by step: Int) -> [Int] {
        var values: [Int] = []
        var i = from
        while step > 0 ? i < to : i > to {
            values.append(i)
            let (next, overflow) = i.addingReportingOverflow(step)
            if overflow { break }
            i = next
        }
        return values
    }

    /// Integer arithmetic with Python's floor division and modulo; overflow is an error, not a crash.
    private static func integer(_ op: String, _ a: Int, _ b: Int) throws -> JinjaValue {
        func checked(_ result: (partialValue: Int, overflow: Bool)) throws -> JinjaValue {
            if result.overflow { throw JinjaError.runtime("integer overflow") }
            return .int(result.partialValue)
        }
        switch op {
        case "+": return try checked(a.addingReportingOverflow(b))
        case "-": return try checked(a.subtractingReportingOverflow(b))
        case "*": return try checked(a.multipliedReportingOverflow(by: b))
        case "//", "%":
            guard b != 0 else { throw JinjaError.runtime("integer division or modulo by zero") }
            guard !(a == Int.min && b == -1) else { throw JinjaError.runtime("integer overflow") }
            var (q, m) = a.quotientAndRemainder(dividingBy: b)
            if m != 0, (m < 0) != (b < 0) { q -= 1; m += b }
            return .int(op == "//" ? q : m)
        default:  // **
            if b < 0 { return .double(Foundation.pow(Double(a), Double(b))) }
            var result = 1, base = a, exponent = b
            while exponent > 0 {
                if exponent & 1 == 1 { result = try checked(result.multipliedReportingOverflow(by: base)).integer! }
                exponent >>= 1
                if exponent > 0 { base = try checked(base.multipliedReportingOverflow(by: base)).integer! }
            }
            return .int(result)
        }
    }

    private static func repeated(_ value: JinjaValue, _ times: Int, _ limits: JinjaLimits) throws -> JinjaValue {
        let n = max(0, times)
        switch value {
        case .string(let s):
            let size = s.utf8.count.multipliedReportingOverflow(by: n)
            guard !size.overflow, size.partialValue <= limits.maxOutputBytes else {
                throw JinjaError.limit("string longer than \(limits.maxOutputBytes) bytes")
            }
            return .string(String(repeating: s, count: s.isEmpty ? 0 : n))
        case .list(let a):
            let size = a.count.multipliedReportingOverflow(by: n)
            guard !size.overflow, size.partialValue <= limits.maxLoopIterations else {
                throw JinjaError.limit("list longer than \(limits.maxLoopIterations) items")
            }
            return .list(Array(repeating: a, count: a.isEmpty ? 0 : n).flatMap { $0 })
        default: return value
        }
    }

    private static func sized(_ value: JinjaValue, _ limits: JinjaLimits) throws -> JinjaValue {
        switch value {
        case .string(let s) where s.utf8.count > limits.maxOutputBytes:
            throw JinjaError.limit("string longer than \(limits.maxOutputBytes) bytes")
        case .list(let a) where a.count > limits.maxLoopIterations, .tuple(let a) where a.count > limits.maxLoopIterations:
            throw JinjaError.limit("list longer than \(limits.maxLoopIterations) items")
        default: return value
        }
    }
}

enum JinjaConversions {
    /// jinja2's `int` filter: ints, truncated floats, numeric strings; nil when it is not a number.
    static func toInt(_ value: JinjaValue) -> JinjaValue? {
        switch value {
        case .int, .bool: return value.integer.map { .int($0) }
        case .double(let d): return d.isFinite && abs(d) < 9.2e18 ? .int(Int(d)) : nil
        case .string(let s):
            let t = s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
            if let i = Int(t) { return .int(i) }
            return Double(t).flatMap { $0.isFinite && abs($0) < 9.2e18 ? .int(Int($0)) : nil }
        default: return nil
        }
    }

    static func toDouble(_ value: JinjaValue) -> Double? {
        if case .string(let s) = value { return Double(s.trimmingCharacters(in: .whitespaces)) }
        return value.number
    }
}

enum JinjaText {
    static func strip(_ s: String, chars: String?, leading: Bool, trailing: Bool) -> String {
        let set = chars.map { Set($0.unicodeScalars) }
        let remove = { (c: Unicode.Scalar) in set?.contains(c) ?? c.isPythonWhitespace }
        var scalars = Substring(s).unicodeScalars[...]
        if leading { while let c = scalars.first, remove(c) { scalars.removeFirst() } }
        if trailing { while let c = scalars.last, remove(c) { scalars.removeLast() } }
        return String(String.UnicodeScalarView(scalars))
    }

    /// Python's str.split: on whitespace runs (dropping empty parts) without a separator, else exactly.
    static func split(_ s: String, separator: String?, maxSplit: Int) throws -> [String] {
        var parts: [String] = []
        if let separator {
            guard !separator.isEmpty else { throw JinjaError.runtime("empty separator") }
            var rest = Substring(s)
            while maxSplit < 0 || parts.count < maxSplit, let range = rest.range(of: separator) {
                parts.append(String(rest[..<range.lowerBound]))
                rest = rest[range.upperBound...]
            }
            parts.append(String(rest))
            return parts
        }
        var scalars = Substring(s).unicodeScalars[...]
        while true {
            while let c = scalars.first, c.isPythonWhitespace { scalars.removeFirst() }
            if scalars.isEmpty { return parts }
            if maxSplit >= 0, parts.count == maxSplit {
                var tail = scalars
                while let c = tail.last, c.isPythonWhitespace { tail.removeLast() }
                parts.append(String(String.UnicodeScalarView(tail)))
                return parts
            }
            let end = scalars.firstIndex { $0.isPythonWhitespace } ?? scalars.endIndex
            parts.append(String(String.UnicodeScalarView(scalars[..<end])))
            scalars = scalars[end...]
        }
    }

    static func replace(_ s: String, _ old: String, _ new: String, count: Int, limits: JinjaLimits) throws -> String {
        var pieces: [String]
        if old.isEmpty {  // Python inserts `new` between every character
            pieces = [""] + s.unicodeScalars.map { String($0) } + [""]
        } else {
            pieces = s.components(separatedBy: old)
        }
        if count >= 0, pieces.count - 1 > count {
            let joinedTail = pieces[(count + 1)...].joined(separator: old)
            pieces = Array(pieces[...count]) + [joinedTail]
        }
        let length = pieces.reduce(0) { $0 + $1.utf8.count } + (pieces.count - 1) * new.utf8.count
        guard length <= limits.maxOutputBytes else { throw JinjaError.limit("string longer than \(limits.maxOutputBytes) bytes") }
        return pieces.joined(separator: new)
    }

    static func capitalize(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        return String(first).uppercased() + String(String.UnicodeScalarView(s.unicodeScalars.dropFirst())).lowercased()
    }

    /// Python's str.title: upper-case after any character that is not a letter.
    static func pythonTitle(_ s: String) -> String {
        var out = "", previousIsLetter = false
        for c in s.unicodeScalars {
            out += previousIsLetter ? String(c).lowercased() : String(c).uppercased()
            previousIsLetter = c.properties.isAlphabetic
        }
        return out
    }

    /// jinja2's `title` filter: capitalise each word, words split at spaces, hyphens and opening brackets.
    static func jinjaTitle(_ s: String) -> String {
        var out = "", atWordStart = true
        for c in s.unicodeScalars {
            let separator = c.isPythonWhitespace || "-({[<".unicodeScalars.contains(c)
            out += separator ? String(c) : (atWordStart ? String(c).uppercased() : String(c).lowercased())
            atWordStart = separator
        }
        return out
    }

    /// markupsafe's escape, as jinja2's `escape` filter applies it.
    static func escapeHTML(_ s: String) -> String {
        s.replacingScalars { ["&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&#34;", "'": "&#39;"][$0] }
    }

    /// Python's str.format for plain fields: `{}`, `{0}`, `{name}`, `!r` and `!s`, `{{` and `}}`.
    static func format(_ s: String, _ args: JinjaCallArguments) throws -> String {
        var out = "", field: String?, next = 0
        var scalars = s.unicodeScalars[...]
        while let c = scalars.popFirst() {
            if var name = field {
                guard c == "}" else { field = name + String(c); continue }
                field = nil
                var conversion = "s"
                if let bang = name.firstIndex(of: "!") { conversion = String(name[name.index(after: bang)...]); name = String(name[..<bang]) }
                guard !name.contains(":"), !name.contains("."), !name.contains("["), conversion == "s" || conversion == "r" else {
                    throw JinjaError.unsupported("format specification '{\(name)}'")
                }
                let value: JinjaValue?
                if name.isEmpty { value = next < args.positional.count ? args.positional[next] : nil; next += 1 }
                else if let i = Int(name) { value = i < args.positional.count ? args.positional[i] : nil }
                else { value = args.keywords[name] }
                guard let value else { throw JinjaError.runtime("format: no argument for '{\(name)}'") }
                out += conversion == "r" ? value.repr : value.string
            } else if c == "{" || c == "}", scalars.first == c {
                out.unicodeScalars.append(scalars.removeFirst())
            } else if c == "{" {
                field = ""
            } else if c == "}" {
                throw JinjaError.runtime("Single '}' encountered in format string")
            } else {
                out.unicodeScalars.append(c)
            }
        }
        if field != nil { throw JinjaError.runtime("Single '{' encountered in format string") }
        return out
    }

    static func indent(_ s: String, width: Int, first: Bool, blank: Bool) -> String {
        let pad = String(repeating: " ", count: max(0, width))
        var lines = s.components(separatedBy: "\n")
        for i in lines.indices where (i > 0 || first) && (blank || !lines[i].allSatisfy(\.isWhitespace)) {
            lines[i] = pad + lines[i]
        }
        return lines.joined(separator: "\n")
    }
}

/// Python's json.dumps as Hugging Face's tojson calls it (separators ", " and ": ", or "," with an indent).
struct JinjaJSON {
    var indent: Int?
    var ensureASCII = false
    var sortKeys = false
    /// Indentation multiplies with depth and length: the text is refused before it is built past this.
    var maxBytes: Int

    func encode(_ value: JinjaValue, level: Int = 0) throws -> String {
        switch value {
        case .none: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : JinjaValue.pythonFloat(d)
        case .string(let s): return JinjaJSON.quoted(s, ensureASCII: ensureASCII)
        case .list(let a), .tuple(let a):
            return try container(try a.map { try encode($0, level: level + 1) }, "[", "]", level: level)
        case .dict(let d):
            // JSON keys are strings: json.dumps writes integer keys as their digits.
            let named = d.pairs.map { (name: $0.key.value.string, value: $0.value) }
            let ordered = sortKeys ? named.sorted { $0.name.unicodeScalars.lexicographicallyPrecedes($1.name.unicodeScalars) } : named
            return try container(try ordered.map {
                JinjaJSON.quoted($0.name, ensureASCII: ensureASCII) + ": " + (try encode($0.value, level: level + 1))
            }, "{", "}", level: level)
        default:
            throw JinjaError.runtime("Object of type \(value.typeName) is not JSON serializable")
        }
    }

    /// The items between brackets: on one line (", ") or, with an indent, one per line (",").
    private func container(_ parts: [String], _ open: String, _ close: String, level: Int) throws -> String {
        guard !parts.isEmpty else { return open + close }
        let width = (indent ?? 0) * (level + 1)
        guard parts.reduce(0, { $0 + $1.utf8.count }) + parts.count * (width + 2) <= maxBytes else {
            throw JinjaError.limit("tojson text longer than \(maxBytes) bytes")
        }
        guard let indent else { return open + parts.joined(separator: ", ") + close }
        let newline = "\n" + String(repeating: " ", count: width)
        return open + newline + parts.joined(separator: "," + newline) + "\n" + String(repeating: " ", count: indent * level) + close
    }

    static func quoted(_ s: String, ensureASCII: Bool) -> String {
        let escapes: [Unicode.Scalar: String] = ["\"": "\\\"", "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                                                 "\u{08}": "\\b", "\u{0C}": "\\f"]
        return "\"" + s.replacingScalars { c in
            if let escape = escapes[c] { return escape }
            guard c.value < 0x20 || (ensureASCII && c.value > 0x7e) else { return nil }
            return String(c).utf16.map { "\\u" + hex(UInt32($0), digits: 4) }.joined()
        } + "\""
    }
}

/// strftime with the C locale's English names, in the local time zone (as Python's datetime.now()).
enum JinjaCalendar {
    private static let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                                 "October", "November", "December"]
    private static let weekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

    static func format(_ date: Date, _ format: String) -> String {
        let calendar = Calendar(identifier: .gregorian)
        let c = calendar.dateComponents(in: TimeZone.current, from: date)
        let (year, month, day) = (c.year ?? 1970, c.month ?? 1, c.day ?? 1)
        let (hour, minute, second) = (c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
        let weekday = (c.weekday ?? 1) - 1
        let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date) ?? 1
        func pad(_ n: Int, _ width: Int = 2) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        var out = "", escaped = false
        for ch in format {
            guard escaped else {
                if ch == "%" { escaped = true } else { out.append(ch) }
                continue
            }
            escaped = false
            switch ch {
            case "d": out += pad(day)
            case "m": out += pad(month)
            case "Y": out += String(year)
            case "y": out += pad(year % 100)
            case "H": out += pad(hour)
            case "I": out += pad(hour % 12 == 0 ? 12 : hour % 12)
            case "M": out += pad(minute)
            case "S": out += pad(second)
            case "p": out += hour < 12 ? "AM" : "PM"
            case "b": out += String(months[month - 1].prefix(3))
            case "B": out += months[month - 1]
            case "a": out += String(weekdays[weekday].prefix(3))
            case "A": out += weekdays[weekday]
            case "j": out += pad(dayOfYear, 3)
            case "%": out += "%"
            default: out += "%" + String(ch)
            }
        }
        return escaped ? out + "%" : out
    }
}
