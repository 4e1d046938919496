// The values a Jinja template computes with, and how Python (hence jinja2) prints, compares and
// tests them. Chat templates are written against Python semantics, so these follow Python's rules:
// `True`/`None` spelling, repr() inside lists, int/float arithmetic, truthiness of empty containers.

/// A dictionary key: templates use strings, and sometimes integers (`{512: 128}`).
public enum JinjaKey: Hashable, Sendable {
    case string(String)
    case int(Int)

    /// nil for values Python could hash but templates do not use as keys (floats, tuples).
    public init?(_ value: JinjaValue) {
        switch value {
        case .string(let s): self = .string(s)
        case .int, .bool: self = .int(value.integer!)
        default: return nil
        }
    }

    public var value: JinjaValue {
        switch self {
        case .string(let s): return .string(s)
        case .int(let i): return .int(i)
        }
    }
}

/// A dictionary that keeps insertion order, as Python's does (tojson and iteration depend on it).
public struct JinjaDict: Sendable, Equatable {
    public private(set) var keys: [JinjaKey] = []
    private var storage: [JinjaKey: JinjaValue] = [:]

    public init() {}
    public init(_ pairs: [(String, JinjaValue)]) { for (k, v) in pairs { self[k] = v } }

    public subscript(key: JinjaKey) -> JinjaValue? {
        get { storage[key] }
        set {
            if storage[key] == nil, newValue != nil { keys.append(key) }
            if newValue == nil, storage[key] != nil { keys.removeAll { $0 == key } }
            storage[key] = newValue
        }
    }
    public subscript(key: String) -> JinjaValue? {
        get { self[.string(key)] }
        set { self[.string(key)] = newValue }
    }
    public var count: Int { keys.count }
    public var pairs: [(key: JinjaKey, value: JinjaValue)] { keys.map { ($0, storage[$0]!) } }
    public var values: [JinjaValue] { keys.map { storage[$0]! } }
}

public indirect enum JinjaValue: Sendable, Equatable {
    /// A name or key that does not exist; `hint` says which, for error messages.
    case undefined(hint: String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([JinjaValue])
    case tuple([JinjaValue])
    case dict(JinjaDict)
    /// `namespace(...)`: mutable across scopes, so it lives in the renderer's store (this is its index).
    case namespace(Int)
    case macro(JinjaMacro)
    /// A global function of the environment (`raise_exception`, `range`, ...).
    case function(String)
    /// `x.method` not yet called (`s.strip` before `()`).
    case boundMethod(receiver: JinjaValue, name: String)

    public static let missing = JinjaValue.undefined(hint: "value")

    public var isUndefined: Bool { if case .undefined = self { return true } else { return false } }

    /// Python truthiness.
    public var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return d.count > 0
        case .namespace, .macro, .function, .boundMethod: return true
        }
    }

    /// Python's type name, as error messages spell it.
    public var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .macro: return "Macro"
        case .function, .boundMethod: return "function"
        }
    }

    /// A number as a Double, with bools counting as 0/1 the way Python's do; nil for non-numbers.
    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// An integer (bools included), for arithmetic that stays integral.
    var integer: Int? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// Whether containers nest more than `limit` deep. Printing, comparing and freeing a value recurse
    /// through it, so a template must not build one deeper than the stack allows (the walk stops at `limit`).
    func nestsDeeper(than limit: Int) -> Bool {
        if limit < 0 { return true }
        switch self {
        case .list(let a), .tuple(let a): return a.contains { $0.nestsDeeper(than: limit - 1) }
        case .dict(let d): return d.values.contains { $0.nestsDeeper(than: limit - 1) }
        case .boundMethod(let receiver, _): return receiver.nestsDeeper(than: limit - 1)
        default: return false
        }
    }

    // MARK: Printing

    /// `str(value)`: what `{{ value }}` prints.
    public var string: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr
        }
    }

    /// `repr(value)`: how values print inside containers.
    public var repr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return JinjaValue.pythonFloat(d)
        case .string(let s): return JinjaValue.pythonQuoted(s)
        case .list(let a): return "[" + a.map(\.repr).joined(separator: ", ") + "]"
        case .tuple(let a): return a.count == 1 ? "(\(a[0].repr),)" : "(" + a.map(\.repr).joined(separator: ", ") + ")"
        case .dict(let d): return "{" + d.pairs.map { "\($0.key.value.repr): \($0.value.repr)" }.joined(separator: ", ") + "}"
        case .namespace: return "<Namespace>"
        case .macro(let m): return "<Macro '\(m.name)'>"
        case .function(let name): return "<function \(name)>"
        case .boundMethod(_, let name): return "<built-in method \(name)>"
        }
    }

    /// Python's float repr: shortest round-trip digits, `.0` on integral values, `inf`/`nan`.
    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        return d.description  // Swift's shortest representation matches Python's repr, exponent style included
    }

    /// Python's repr of a string: single quotes unless the text has one and no double quote.
    static func pythonQuoted(_ s: String) -> String {
        let quote: Unicode.Scalar = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        let escapes: [Unicode.Scalar: String] = ["\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", quote: "\\" + String(quote)]
        return String(quote) + s.replacingScalars { c in
            if let escape = escapes[c] { return escape }
            return c.value < 0x20 || (0x7f...0xa0).contains(c.value) ? "\\x" + hex(c.value, digits: 2) : nil
        } + String(quote)
    }

    // MARK: Comparison

    /// Python `==` (1 == 1.0 == True; a list never equals a tuple; undefined equals only undefined).
    public func pythonEquals(_ other: JinjaValue) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.pythonEquals($1) }
        case (.dict(let a), .dict(let b)):
            return a.count == b.count && a.pairs.allSatisfy { pair in b[pair.key].map { pair.value.pythonEquals($0) } ?? false }
        case (.namespace(let a), .namespace(let b)): return a == b
        default:
            if let x = number, let y = other.number { return x == y }
            return false
        }
    }

    /// Python ordering: numbers with numbers, strings by code point, sequences lexicographically.
    public func pythonCompare(_ other: JinjaValue) throws -> Int {
        switch (self, other) {
        case (.string(let a), .string(let b)):
            for (x, y) in zip(a.unicodeScalars, b.unicodeScalars) where x != y { return x.value < y.value ? -1 : 1 }
            let (m, n) = (a.unicodeScalars.count, b.unicodeScalars.count)
            return m == n ? 0 : (m < n ? -1 : 1)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            for (x, y) in zip(a, b) where !x.pythonEquals(y) { return try x.pythonCompare(y) }
            return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
        default:
            if let i = integer, let j = other.integer { return i == j ? 0 : (i < j ? -1 : 1) }
            if let x = number, let y = other.number { return x == y ? 0 : (x < y ? -1 : 1) }
            throw JinjaError.runtime("'<' not supported between instances of '\(typeName)' and '\(other.typeName)'")
        }
    }
}

/// A `{% macro %}`: called like a function, returns what its body renders.
public struct JinjaMacro: Sendable, Equatable {
    public var name: String
    public var parameters: [String]
    public var defaults: [String: JinjaExpression]
    public var body: [JinjaNode]
}

extension String {
    /// The text with each scalar for which `replacement` gives a string replaced by it.
    func replacingScalars(_ replacement: (Unicode.Scalar) -> String?) -> String {
        var out = ""
        for c in unicodeScalars {
            if let r = replacement(c) { out += r } else { out.unicodeScalars.append(c) }
        }
        return out
    }
}

func hex(_ value: UInt32, digits: Int) -> String {
    let s = String(value, radix: 16)
    return String(repeating: "0", count: max(0, digits - s.count)) + s
}

extension Unicode.Scalar {
    /// Python's str.isspace() (what strip() and split() remove).
    var isPythonWhitespace: Bool {
        switch value {
        case 0x09...0x0d, 0x1c...0x20, 0x85, 0xa0, 0x1680, 0x2000...0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000: return true
        default: return false
        }
    }
}
