// What templates can call: jinja2's filters and tests, Python's string and dict methods, and the
// globals Hugging Face's environment defines (raise_exception, strftime_now) next to jinja2's own
// (namespace, range, dict). `tojson` is Hugging Face's: json.dumps without HTML escaping.
import Foundation

extension JinjaRenderer {
    static let globalFunctions = ["raise_exception", "strftime_now", "namespace", "range", "dict"]
    static let stringMethods: Set<String> = ["strip", "lstrip", "rstrip", "startswith", "endswith", "split", "upper",
                                             "lower", "title", "capitalize", "replace", "find", "count", "join", "format"]
    static let dictMethods: Set<String> = ["get", "items", "keys", "values", "pop", "update", "setdefault", "clear", "popitem"]
    static let listMethods: Set<String> = ["append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear", "index", "count"]
    /// Methods the immutable sandbox refuses: they would change a value the caller passed in.
    static let mutators: Set<String> = ["append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear",
                                        "update", "setdefault", "popitem"]

    // MARK: Globals

    mutating func callGlobal(_ name: String, _ args: JinjaCallArguments) throws -> JinjaValue {
        switch name {
        case "raise_exception":
            throw JinjaError.raised(args.value(0, "message")?.string ?? "")
        case "strftime_now":
            guard case .string(let format)? = args.value(0, "format") else { throw JinjaError.runtime("strftime_now() expects a format string") }
            return .string(JinjaCalendar.format(now, format))
        case "namespace", "dict":
            var contents = JinjaDict()
            if case .dict(let initial)? = args.positional.first { contents = initial }
            for key in args.keywordOrder { contents[key] = args.keywords[key] }
            if name == "dict" { return .dict(contents) }
            namespaces.append(contents)
            return .namespace(namespaces.count - 1)
        default:  // range
            let bounds = try args.positional.map { v -> Int in
                guard let i = v.integer else { throw JinjaError.runtime("range() expects integers, not '\(v.typeName)'") }
                return i
            }
            guard (1...3).contains(bounds.count) else { throw JinjaError.runtime("range expected 1 to 3 arguments") }
            let (start, stop, step) = bounds.count == 1 ? (0, bounds[0], 1) : (bounds[0], bounds[1], bounds.count == 3 ? bounds[2] : 1)
            guard step != 0 else { throw JinjaError.runtime("range() arg 3 must not be zero") }
            let count = step > 0 ? max(0, (stop - start + step - 1) / step) : max(0, (start - stop - step - 1) / -step)
            guard count <= limits.maxLoopIterations else { throw JinjaError.limit("range of \(count) items") }
            return .list(Swift.stride(from: start, to: stop, by: step).map { .int($0) })
        }
    }

    // MARK: Methods

    func callMethod(_ receiver: JinjaValue, _ name: String, _ args: JinjaCallArguments) throws -> JinjaValue {
        if JinjaRenderer.mutators.contains(name) {
            throw JinjaError.runtime("access to attribute '\(name)' of '\(receiver.typeName)' object is unsafe.")
        }
        switch receiver {
        case .string(let s): return try stringMethod(s, name, args)
        case .dict(let d):
            switch name {
            case "get":
                return args.value(0, "key").flatMap(JinjaKey.init).flatMap { d[$0] } ?? args.value(1, "default") ?? .none
            case "items": return .list(d.pairs.map { .tuple([$0.key.value, $0.value]) })
            case "keys": return .list(d.keys.map(\.value))
            default: return .list(d.values)
            }
        case .list(let items):
            let needle = args.value(0, "value") ?? .none
            if name == "count" { return .int(items.filter { $0.pythonEquals(needle) }.count) }
            guard let i = items.firstIndex(where: { $0.pythonEquals(needle) }) else { throw JinjaError.runtime("\(needle.repr) is not in list") }
            return .int(i)
        default:
            throw JinjaError.runtime("'\(receiver.typeName)' object has no attribute '\(name)'")
        }
    }

    private func stringMethod(_ s: String, _ name: String, _ args: JinjaCallArguments) throws -> JinjaValue {
        func stringArgument(_ i: Int, _ label: String) throws -> String? {
            switch args.value(i, label) {
            case nil, .none?: return nil
            case .string(let v)?: return v
            case let other?: throw JinjaError.runtime("\(name)() argument must be str or None, not \(other.typeName)")
            }
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            let chars = try stringArgument(0, "chars")
            return .string(JinjaText.strip(s, chars: chars, leading: name != "rstrip", trailing: name != "lstrip"))
        case "startswith", "endswith":
            let candidates: [JinjaValue]
            switch args.value(0, name == "startswith" ? "prefix" : "suffix") {
            case .tuple(let options)?, .list(let options)?: candidates = options
            case let one?: candidates = [one]
            case nil: throw JinjaError.runtime("\(name)() takes at least 1 argument")
            }
            return .bool(try candidates.contains { candidate in
                guard case .string(let c) = candidate else { throw JinjaError.runtime("\(name) first arg must be str or a tuple of str") }
                return name == "startswith" ? s.unicodeScalars.starts(with: c.unicodeScalars)
                    : s.unicodeScalars.reversed().starts(with: c.unicodeScalars.reversed())
            })
        case "split":
            let limit = args.value(1, "maxsplit")?.integer ?? -1
            return .list(try JinjaText.split(s, separator: try stringArgument(0, "sep"), maxSplit: limit).map { .string($0) })
        case "upper": return .string(s.uppercased())
        case "lower": return .string(s.lowercased())
        case "title": return .string(JinjaText.pythonTitle(s))
        case "capitalize": return .string(JinjaText.capitalize(s))
        case "replace":
            guard let old = try stringArgument(0, "old"), let new = try stringArgument(1, "new") else {
                throw JinjaError.runtime("replace() expects two strings")
            }
            return .string(try JinjaText.replace(s, old, new, count: args.value(2, "count")?.integer ?? -1, limits: limits))
        case "find":
            guard let needle = try stringArgument(0, "sub") else { throw JinjaError.runtime("find() expects a string") }
            guard let range = s.range(of: needle) else { return .int(needle.isEmpty ? 0 : -1) }
            return .int(s.unicodeScalars.distance(from: s.startIndex, to: range.lowerBound))
        case "count":
            guard let needle = try stringArgument(0, "sub"), !needle.isEmpty else { return .int(s.unicodeScalars.count + 1) }
            return .int(s.components(separatedBy: needle).count - 1)
        case "join":
            return .string(try iterate(args.value(0, "iterable") ?? .none).map { item -> String in
                guard case .string(let part) = item else { throw JinjaError.runtime("sequence item: expected str instance, \(item.typeName) found") }
                return part
            }.joined(separator: s))
        case "format":
            return .string(try JinjaText.format(s, args))
        default:
            throw JinjaError.unsupported("the string method '\(name)'")
        }
    }

    // MARK: Filters

    mutating func applyFilter(_ name: String, to value: JinjaValue, _ args: JinjaCallArguments) throws -> JinjaValue {
        switch name {
        case "default", "d":
            let fallback = args.value(0, "default_value") ?? .string("")
            let boolean = args.value(1, "boolean")?.isTruthy ?? false
            return value.isUndefined || (boolean && !value.isTruthy) ? fallback : value
        case "trim":
            let chars: String? = if case .string(let c)? = args.value(0, "chars") { c } else { nil }
            return .string(JinjaText.strip(value.string, chars: chars, leading: true, trailing: true))
        case "upper": return .string(value.string.uppercased())
        case "lower": return .string(value.string.lowercased())
        case "capitalize": return .string(JinjaText.capitalize(value.string))
        case "title": return .string(JinjaText.jinjaTitle(value.string))
        case "string", "safe": return value.isUndefined || name == "string" ? .string(value.string) : value
        case "replace":
            guard case .string(let old)? = args.value(0, "old"), case .string(let new)? = args.value(1, "new") else {
                throw JinjaError.runtime("replace expects two strings")
            }
            return .string(try JinjaText.replace(value.string, old, new, count: args.value(2, "count")?.integer ?? -1, limits: limits))
        case "int": return JinjaConversions.toInt(value) ?? args.value(0, "default") ?? .int(0)
        case "float": return JinjaConversions.toDouble(value).map { .double($0) } ?? args.value(0, "default") ?? .double(0)
        case "abs":
            if case .double(let d) = value { return .double(abs(d)) }
            guard let i = value.integer, i != Int.min else { throw JinjaError.runtime("bad operand type for abs(): '\(value.typeName)'") }
            return .int(abs(i))
        case "length", "count":
            switch value {
            case .string(let s): return .int(s.unicodeScalars.count)
            case .list(let a), .tuple(let a): return .int(a.count)
            case .dict(let d): return .int(d.count)
            case .undefined: return .int(0)
            default: throw JinjaError.runtime("object of type '\(value.typeName)' has no len()")
            }
        case "first":
            return try iterate(value).first ?? .undefined(hint: "No first item, sequence was empty.")
        case "last":
            return try iterate(value).last ?? .undefined(hint: "No last item, sequence was empty.")
        case "list": return .list(try iterate(value))
        case "reverse":
            if case .string(let s) = value { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
            return .list(try iterate(value).reversed())
        case "items":
            if case .undefined = value { return .list([]) }
            guard case .dict(let d) = value else { throw JinjaError.runtime("Can only get item pairs from a mapping.") }
            return .list(d.pairs.map { .tuple([$0.key.value, $0.value]) })
        case "join":
            var items = try iterate(value)
            if case .string(let name)? = args.keywords["attribute"] { items = try items.map { try attribute(of: $0, name) } }
            let separator = args.value(0, "d")?.string ?? ""
            return .string(items.map(\.string).joined(separator: separator))
        case "unique":
            var seen: [JinjaValue] = []
            for item in try iterate(value) where !seen.contains(where: { $0.pythonEquals(item) }) { seen.append(item) }
            return .list(seen)
        case "sort":
            let attributeName: String? = if case .string(let a)? = args.value(2, "attribute") { a } else { nil }
            return .list(try sorted(try iterate(value), reverse: args.value(0, "reverse")?.isTruthy ?? false,
                                    caseSensitive: args.value(1, "case_sensitive")?.isTruthy ?? false) { item in
                try attributeName.map { try attribute(of: item, $0) } ?? item
            })
        case "min", "max":
            let attributeName: String? = if case .string(let a)? = args.value(1, "attribute") { a } else { nil }
            let ordered = try sorted(try iterate(value), reverse: name == "max", caseSensitive: args.value(0, "case_sensitive")?.isTruthy ?? false) { item in
                try attributeName.map { try attribute(of: item, $0) } ?? item
            }
            return ordered.first ?? .undefined(hint: "No aggregated item, sequence was empty.")
        case "escape", "e":
            return .string(JinjaText.escapeHTML(value.string))
        case "dictsort":
            guard case .dict(let d) = value else { throw JinjaError.runtime("you can only sort by either \"key\" or \"value\"") }
            let byValue = args.value(1, "by")?.string == "value"
            return .list(try sorted(d.pairs.map { .tuple([$0.key.value, $0.value]) }, reverse: args.value(2, "reverse")?.isTruthy ?? false,
                                    caseSensitive: args.value(0, "case_sensitive")?.isTruthy ?? false) { pair in
                guard case .tuple(let kv) = pair else { return pair }
                return kv[byValue ? 1 : 0]
            })
        // jinja2's map, select and reject walk nothing when the value is falsy (None included).
        case "map": return .list(value.isTruthy ? try iterate(value).map { try mapItem($0, args) } : [])
        case "select", "reject":
            let items = value.isTruthy ? try iterate(value) : []
            return .list(try items.filter { try passes($0, testArguments: args, from: 0) == (name == "select") })
        case "selectattr", "rejectattr":
            guard case .string(let attributeName)? = args.positional.first else { throw JinjaError.runtime("\(name) needs an attribute name") }
            return .list(try (value.isTruthy ? try iterate(value) : []).filter { item in
                try passes(try attribute(of: item, attributeName), testArguments: args, from: 1) == (name == "selectattr")
            })
        case "tojson":
            let indent = args.value(0, "indent")?.integer
            return .string(try JinjaJSON.encode(value, indent: indent, ensureASCII: args.keywords["ensure_ascii"]?.isTruthy ?? false,
                                                sortKeys: args.keywords["sort_keys"]?.isTruthy ?? false))
        case "indent":
            return .string(JinjaText.indent(value.string, width: args.value(0, "width")?.integer ?? 4,
                                            first: args.value(1, "first")?.isTruthy ?? false,
                                            blank: args.value(2, "blank")?.isTruthy ?? false))
        default:
            throw JinjaError.unsupported("the filter '\(name)'")
        }
    }

    /// Python's stable sort on a key, strings compared case-insensitively unless asked otherwise.
    private func sorted(_ items: [JinjaValue], reverse: Bool, caseSensitive: Bool,
                        key: (JinjaValue) throws -> JinjaValue) throws -> [JinjaValue] {
        let keyed = try items.map { item -> (JinjaValue, JinjaValue) in
            let k = try key(item)
            if !caseSensitive, case .string(let s) = k { return (.string(s.lowercased()), item) }
            return (k, item)
        }
        var failure: Error?
        let result = keyed.enumerated().sorted { a, b in
            do {
                let order = try a.element.0.pythonCompare(b.element.0)
                if order == 0 { return a.offset < b.offset }
                return reverse ? order > 0 : order < 0
            } catch { failure = error; return false }
        }
        if let failure { throw failure }
        return result.map(\.element.1)
    }

    /// `map('filter', args...)` or `map(attribute='name', default=...)`.
    private mutating func mapItem(_ item: JinjaValue, _ args: JinjaCallArguments) throws -> JinjaValue {
        if case .string(let attributeName)? = args.keywords["attribute"] {
            let found = try attribute(of: item, attributeName)
            return found.isUndefined ? (args.keywords["default"] ?? found) : found
        }
        guard case .string(let filter)? = args.positional.first else { throw JinjaError.runtime("map needs a filter name or attribute=") }
        return try applyFilter(filter, to: item, JinjaCallArguments(positional: Array(args.positional.dropFirst()),
                                                                    keywords: [:], keywordOrder: []))
    }

    /// select/reject: the named test (from position `from` on) or plain truthiness.
    private mutating func passes(_ value: JinjaValue, testArguments args: JinjaCallArguments, from: Int) throws -> Bool {
        guard args.positional.count > from, case .string(let test) = args.positional[from] else { return value.isTruthy }
        return try applyTest(test, to: value, JinjaCallArguments(positional: Array(args.positional.dropFirst(from + 1)),
                                                                 keywords: [:], keywordOrder: []))
    }

    // MARK: Tests

    func applyTest(_ name: String, to value: JinjaValue, _ args: JinjaCallArguments) throws -> Bool {
        let other = args.value(0, "other") ?? .none
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true } else { return false }
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .dict = value { return true } else { return false }
        case "number": return value.number != nil
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": return value == .bool(true)
        case "false": return value == .bool(false)
        case "iterable":
            switch value {
            case .string, .list, .tuple, .dict, .undefined: return true
            default: return false
            }
        case "sequence":
            switch value {
            case .string, .list, .tuple, .dict, .undefined: return true
            default: return false
            }
        case "callable":
            switch value {
            case .function, .macro, .boundMethod: return true
            default: return false
            }
        case "odd", "even":
            guard let i = value.integer else { throw JinjaError.runtime("'\(value.typeName)' is not an integer") }
            return (abs(i % 2) == 1) == (name == "odd")
        case "divisibleby":
            guard let i = value.integer, let n = other.integer, n != 0 else { throw JinjaError.runtime("divisibleby needs integers") }
            return i % n == 0
        case "lower": return value.string == value.string.lowercased()
        case "upper": return value.string == value.string.uppercased()
        case "equalto", "eq", "==", "sameas": return value.pythonEquals(other)
        case "ne", "!=": return !value.pythonEquals(other)
        case "lt", "<", "lessthan": return try value.pythonCompare(other) < 0
        case "le", "<=": return try value.pythonCompare(other) <= 0
        case "gt", ">", "greaterthan": return try value.pythonCompare(other) > 0
        case "ge", ">=": return try value.pythonCompare(other) >= 0
        case "in": return try JinjaRenderer.contains(other, value)
        default: throw JinjaError.unsupported("the test '\(name)'")
        }
    }
}

// MARK: - Arithmetic

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
            guard s.utf8.count.multipliedReportingOverflow(by: n).partialValue <= limits.maxOutputBytes || s.isEmpty else {
                throw JinjaError.limit("string longer than \(limits.maxOutputBytes) bytes")
            }
            return .string(String(repeating: s, count: n))
        case .list(let a):
            guard a.count.multipliedReportingOverflow(by: n).partialValue <= limits.maxLoopIterations || a.isEmpty else {
                throw JinjaError.limit("list longer than \(limits.maxLoopIterations) items")
            }
            return .list(Array(repeating: a, count: n).flatMap { $0 })
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

// MARK: - Conversions, text, JSON, dates

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
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
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
enum JinjaJSON {
    static func encode(_ value: JinjaValue, indent: Int?, ensureASCII: Bool, sortKeys: Bool, level: Int = 0) throws -> String {
        let newline = indent.map { "\n" + String(repeating: " ", count: $0 * (level + 1)) }
        let closing = indent.map { "\n" + String(repeating: " ", count: $0 * level) } ?? ""
        let comma = indent == nil ? ", " : ","
        func items(_ parts: [String], _ open: String, _ close: String) -> String {
            parts.isEmpty ? open + close : open + (newline ?? "") + parts.joined(separator: comma + (newline ?? "")) + closing + close
        }
        switch value {
        case .none: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : JinjaValue.pythonFloat(d)
        case .string(let s): return quoted(s, ensureASCII: ensureASCII)
        case .list(let a), .tuple(let a):
            return items(try a.map { try encode($0, indent: indent, ensureASCII: ensureASCII, sortKeys: sortKeys, level: level + 1) }, "[", "]")
        case .dict(let d):
            // JSON keys are strings: json.dumps writes integer keys as their digits.
            let named = d.pairs.map { (name: $0.key.value.string, value: $0.value) }
            let ordered = sortKeys ? named.sorted { $0.name.unicodeScalars.lexicographicallyPrecedes($1.name.unicodeScalars) } : named
            return items(try ordered.map {
                quoted($0.name, ensureASCII: ensureASCII) + ": " + (try encode($0.value, indent: indent, ensureASCII: ensureASCII, sortKeys: sortKeys, level: level + 1))
            }, "{", "}")
        default:
            throw JinjaError.runtime("Object of type \(value.typeName) is not JSON serializable")
        }
    }

    static func quoted(_ s: String, ensureASCII: Bool) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 || (ensureASCII && c.value > 0x7e) {
                    for unit in String(c).utf16 { out += "\\u" + hex(UInt32(unit), digits: 4) }
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
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
