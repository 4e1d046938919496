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
            let count = ((Double(stop) - Double(start)) / Double(step)).rounded(.up)  // in Double: no overflow
            guard count <= Double(limits.maxLoopIterations) else { throw JinjaError.limit("range of \(count) items") }
            return .list(JinjaArithmetic.steps(from: start, to: stop, by: step).map { .int($0) })
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
            let indent = try JinjaRenderer.indentWidth(args.value(0, "indent")?.integer)
            let json = JinjaJSON(indent: indent, ensureASCII: args.keywords["ensure_ascii"]?.isTruthy ?? false,
                                 sortKeys: args.keywords["sort_keys"]?.isTruthy ?? false, maxBytes: limits.maxOutputBytes)
            return .string(try json.encode(value))
        case "indent":
            return .string(JinjaText.indent(value.string, width: try JinjaRenderer.indentWidth(args.value(0, "width")?.integer) ?? 4,
                                            first: args.value(1, "first")?.isTruthy ?? false,
                                            blank: args.value(2, "blank")?.isTruthy ?? false))
        default:
            throw JinjaError.unsupported("the filter '\(name)'")
        }
    }

    /// Python's stable sort on a key, strings compared case-insensitively unless asked otherwise.
    /// An indentation a template asks for: Python treats a negative one as none; a huge one is refused.
    static func indentWidth(_ width: Int?) throws -> Int? {
        guard let width else { return nil }
        guard width <= 1000 else { throw JinjaError.limit("indentation of \(width)") }
        return max(0, width)
    }

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
            return i.remainderReportingOverflow(dividingBy: n).partialValue == 0
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
