// Walks the syntax tree and writes the output. Scoping follows jinja2: `if` opens no scope, each loop
// iteration and each macro call does (so `set` inside a loop is lost after it, which is why templates
// use `namespace()`). Every input is hostile: depth, output size and loop iterations are bounded.
// Operands are evaluated into locals before a method of the renderer uses them: evaluating can change
// the renderer (a new namespace), and `self.method(try evaluate(x))` would see the renderer as it was.
import Foundation

struct JinjaRenderer {
    let limits: JinjaLimits
    let now: Date
    /// Innermost last. scopes[0] holds the globals, the render context and top-level `set`s.
    private(set) var scopes: [[String: JinjaValue]]
    var namespaces: [JinjaDict] = []
    private var written = 0
    private var allocated = 0
    private var iterations = 0
    private var depth = 0

    enum Flow { case normal, breakLoop, continueLoop }

    init(context: [String: JinjaValue], limits: JinjaLimits, now: Date) {
        self.limits = limits
        self.now = now
        var root: [String: JinjaValue] = [:]
        for name in JinjaRenderer.globalFunctions { root[name] = .function(name) }
        root.merge(context) { _, given in given }
        scopes = [root]
    }

    // MARK: Statements

    mutating func execute(_ nodes: [JinjaNode], into out: inout String) throws -> Flow {
        try enter()
        defer { depth -= 1 }
        for node in nodes {
            switch node {
            case .text(let text): try write(text, to: &out)
            case .output(let expression):
                let value = try evaluate(expression)
                try write(value.string, to: &out)
            case .forLoop(let loop): try executeLoop(loop, into: &out)
            case .conditional(let branches, let otherwise):
                let body = try branches.first { try evaluate($0.condition).isTruthy }?.body ?? otherwise
                let flow = try execute(body, into: &out)
                if flow != .normal { return flow }
            case .assign(let target, let expression):
                let value = try evaluate(expression)
                try assign(value, to: target)
            case .assignBlock(let name, let body):
                var captured = ""
                _ = try execute(body, into: &captured)
                scopes[scopes.count - 1][name] = .string(captured)
            case .macro(let macro): scopes[scopes.count - 1][macro.name] = .macro(macro)
            case .breakLoop: return .breakLoop
            case .continueLoop: return .continueLoop
            case .generation(let body):
                let flow = try execute(body, into: &out)
                if flow != .normal { return flow }
            }
        }
        return .normal
    }

    private mutating func executeLoop(_ loop: JinjaForLoop, into out: inout String) throws {
        let iterable = try evaluate(loop.iterable)
        var items = try iterate(iterable)
        if let filter = loop.filter {
            items = try items.filter { item in
                try withScope(try bind(loop.variables, to: item)) { try $0.evaluate(filter).isTruthy }
            }
        }
        if items.isEmpty {
            _ = try withScope([:]) { try $0.execute(loop.otherwise, into: &out) }
            return
        }
        for (i, item) in items.enumerated() {
            iterations += 1
            if iterations > limits.maxLoopIterations { throw JinjaError.limit("more than \(limits.maxLoopIterations) loop iterations") }
            var frame = try bind(loop.variables, to: item)
            frame["loop"] = .dict(loopInfo(index: i, items: items))
            let flow = try withScope(frame) { try $0.execute(loop.body, into: &out) }
            if flow == .breakLoop { break }
        }
    }

    /// jinja2's `loop` object.
    private func loopInfo(index i: Int, items: [JinjaValue]) -> JinjaDict {
        let n = items.count
        var info = JinjaDict([
            ("index", .int(i + 1)), ("index0", .int(i)), ("revindex", .int(n - i)), ("revindex0", .int(n - i - 1)),
            ("first", .bool(i == 0)), ("last", .bool(i == n - 1)), ("length", .int(n)), ("depth", .int(1)), ("depth0", .int(0)),
        ])
        if i > 0 { info["previtem"] = items[i - 1] }
        if i < n - 1 { info["nextitem"] = items[i + 1] }
        return info
    }

    private func bind(_ names: [String], to item: JinjaValue) throws -> [String: JinjaValue] {
        if names.count == 1 { return [names[0]: item] }
        guard case .list(let parts) = item.asSequence, parts.count == names.count else {
            throw JinjaError.runtime("cannot unpack \(item.typeName) into \(names.count) names")
        }
        return Dictionary(uniqueKeysWithValues: zip(names, parts))
    }

    private mutating func assign(_ value: JinjaValue, to target: JinjaTarget) throws {
        switch target {
        case .name(let name):
            scopes[scopes.count - 1][name] = value
        case .names(let names):
            for (name, part) in try bind(names, to: value) { scopes[scopes.count - 1][name] = part }
        case .attribute(let name, let attribute):
            guard case .namespace(let id) = lookup(name) else {
                throw JinjaError.runtime("cannot assign attribute on non-namespace object")
            }
            // The one place a value outlives a loop iteration, so the one place it can nest without bound.
            if value.nestsDeeper(than: limits.maxDepth) { throw JinjaError.limit("a value nested deeper than \(limits.maxDepth)") }
            namespaces[id][attribute] = value
        }
    }

    /// Runs `body` with `frame` as the innermost scope.
    mutating func withScope<T>(_ frame: [String: JinjaValue], _ body: (inout JinjaRenderer) throws -> T) throws -> T {
        scopes.append(frame)
        defer { scopes.removeLast() }
        return try body(&self)
    }

    private mutating func write(_ text: String, to out: inout String) throws {
        written += text.utf8.count
        if written > limits.maxOutputBytes { throw JinjaError.limit("output longer than \(limits.maxOutputBytes) bytes") }
        out += text
    }

    func lookup(_ name: String) -> JinjaValue {
        for scope in scopes.reversed() { if let value = scope[name] { return value } }
        return .undefined(hint: "'\(name)' is undefined")
    }

    mutating func enter() throws {
        depth += 1
        if depth > limits.maxDepth { throw JinjaError.limit("evaluation nested deeper than \(limits.maxDepth)") }
    }

    // MARK: Expressions

    mutating func evaluate(_ expression: JinjaExpression) throws -> JinjaValue {
        try enter()
        defer { depth -= 1 }
        switch expression {
        case .literal(let value): return value
        case .name(let name): return lookup(name)
        case .list(let items): return .list(try items.map { try evaluate($0) })
        case .tuple(let items): return .tuple(try items.map { try evaluate($0) })
        case .dict(let pairs):
            var dict = JinjaDict()
            for pair in pairs {
                guard let key = JinjaKey(try evaluate(pair.key)) else { throw JinjaError.unsupported("dictionary keys other than strings and integers") }
                dict[key] = try evaluate(pair.value)
            }
            return .dict(dict)
        case .attribute(let base, let name):
            let value = try evaluate(base)
            return try attribute(of: value, name)
        case .item(let base, let key):
            let (value, k) = (try evaluate(base), try evaluate(key))
            return try item(of: value, k)
        case .slice(let base, let start, let stop, let step):
            let value = try evaluate(base)
            let bounds = try [start, stop, step].map { try $0.map { try evaluate($0) } }
            return try slice(value, start: bounds[0], stop: bounds[1], step: bounds[2])
        case .call(let callee, let arguments):
            let (function, values) = (try evaluate(callee), try evaluateArguments(arguments))
            return try charged(try call(function, values))
        case .filter(let base, let name, let arguments):
            let (value, values) = (try evaluate(base), try evaluateArguments(arguments))
            return try charged(try applyFilter(name, to: value, values))
        case .test(let base, let name, let arguments, let negated):
            let (value, values) = (try evaluate(base), try evaluateArguments(arguments))
            return .bool(try applyTest(name, to: value, values) != negated)
        case .unary(let op, let operand):
            let value = try evaluate(operand)
            if op == "not" { return .bool(!value.isTruthy) }
            return try negate(value, op: op)
        case .binary("and", let left, let right):
            let l = try evaluate(left)
            return l.isTruthy ? try evaluate(right) : l
        case .binary("or", let left, let right):
            let l = try evaluate(left)
            return l.isTruthy ? l : try evaluate(right)
        case .binary(let op, let left, let right):
            let (l, r) = (try evaluate(left), try evaluate(right))
            return try charged(try JinjaArithmetic.apply(op, l, r, limits: limits))
        case .comparison(let first, let rest):
            var left = try evaluate(first)
            for comparison in rest {
                let right = try evaluate(comparison.operand)
                if !(try compare(left, comparison.op, right)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let value, let condition, let otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(value) }
            return try otherwise.map { try evaluate($0) } ?? .undefined(hint: "the conditional expression has no else")
        }
    }

    /// Counts what an operation created against the work budget.
    private mutating func charged(_ value: JinjaValue) throws -> JinjaValue {
        switch value {
        case .string(let s): allocated += s.utf8.count
        case .list(let a), .tuple(let a): allocated += 32 * a.count  // about what a slot costs in memory
        default: break
        }
        if allocated > limits.maxWorkBytes { throw JinjaError.limit("more than \(limits.maxWorkBytes) bytes of intermediate values") }
        return value
    }

    private mutating func evaluateArguments(_ arguments: JinjaArguments) throws -> JinjaCallArguments {
        var keywords: [String: JinjaValue] = [:]
        for keyword in arguments.keywords { keywords[keyword.name] = try evaluate(keyword.value) }
        return JinjaCallArguments(positional: try arguments.positional.map { try evaluate($0) }, keywords: keywords,
                                  keywordOrder: arguments.keywords.map(\.name))
    }

    private func negate(_ value: JinjaValue, op: String) throws -> JinjaValue {
        if case .double(let d) = value { return .double(op == "-" ? -d : d) }
        guard let i = value.integer else { throw JinjaError.runtime("bad operand type for unary \(op): '\(value.typeName)'") }
        if op == "+" { return .int(i) }
        guard i != Int.min else { throw JinjaError.runtime("integer overflow") }
        return .int(-i)
    }

    private func compare(_ left: JinjaValue, _ op: String, _ right: JinjaValue) throws -> Bool {
        switch op {
        case "==": return left.pythonEquals(right)
        case "!=": return !left.pythonEquals(right)
        case "<": return try left.pythonCompare(right) < 0
        case "<=": return try left.pythonCompare(right) <= 0
        case ">": return try left.pythonCompare(right) > 0
        case ">=": return try left.pythonCompare(right) >= 0
        case "in": return try JinjaRenderer.contains(right, left)
        default: return try !JinjaRenderer.contains(right, left)  // not in
        }
    }

    static func contains(_ container: JinjaValue, _ needle: JinjaValue) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let n) = needle else {
                throw JinjaError.runtime("'in <string>' requires string as left operand, not \(needle.typeName)")
            }
            return n.isEmpty || s.contains(n)
        case .list(let items), .tuple(let items): return items.contains { $0.pythonEquals(needle) }
        case .dict(let d): return JinjaKey(needle).map { d[$0] != nil } ?? false
        case .undefined: return false
        default: throw JinjaError.runtime("argument of type '\(container.typeName)' is not iterable")
        }
    }

    // MARK: Access

    /// `value.name`: jinja2 tries the Python attribute first (methods), then the item.
    func attribute(of value: JinjaValue, _ name: String) throws -> JinjaValue {
        switch value {
        case .undefined(let hint): throw JinjaError.undefined(hint)
        case .dict(let d):
            if JinjaRenderer.dictMethods.contains(name) { return .boundMethod(receiver: value, name: name) }
            return d[name] ?? .undefined(hint: "'dict object' has no attribute '\(name)'")
        case .namespace(let id):
            return namespaces[id][name] ?? .undefined(hint: "'Namespace' has no attribute '\(name)'")
        case .string where JinjaRenderer.stringMethods.contains(name),
             .list where JinjaRenderer.listMethods.contains(name):
            return .boundMethod(receiver: value, name: name)
        default:
            return .undefined(hint: "'\(value.typeName) object' has no attribute '\(name)'")
        }
    }

    /// `value[key]`: the item first, then (for a string key) the attribute.
    func item(of value: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
        if case .undefined(let hint) = value { throw JinjaError.undefined(hint) }
        if case .dict(let d) = value, let k = JinjaKey(key), let found = d[k] { return found }
        if let i = key.integer {
            let items: [JinjaValue]
            switch value {
            case .list(let a), .tuple(let a): items = a
            case .string(let s): items = s.unicodeScalars.map { .string(String($0)) }
            default: return .undefined(hint: "'\(value.typeName) object' has no element \(i)")
            }
            let index = i < 0 ? i + items.count : i
            guard items.indices.contains(index) else { return .undefined(hint: "index \(i) out of range") }
            return items[index]
        }
        if case .string(let name) = key { return try attribute(of: value, name) }
        return .undefined(hint: "'\(value.typeName) object' has no element \(key.repr)")
    }

    /// Python slicing of lists, tuples and strings.
    private func slice(_ value: JinjaValue, start: JinjaValue?, stop: JinjaValue?, step: JinjaValue?) throws -> JinjaValue {
        func bound(_ v: JinjaValue?) throws -> Int? {
            guard let v else { return nil }
            if case .none = v { return nil }
            guard let i = v.integer else { throw JinjaError.runtime("slice indices must be integers or None") }
            return i
        }
        let stride = try bound(step) ?? 1
        guard stride != 0 else { throw JinjaError.runtime("slice step cannot be zero") }
        func indices(_ count: Int) throws -> [Int] {
            func clamp(_ i: Int?, _ fallback: Int) -> Int {
                guard let i else { return fallback }
                let j = i < 0 ? i + count : i
                return stride > 0 ? min(max(j, 0), count) : min(max(j, -1), count - 1)
            }
            let from = clamp(try bound(start), stride > 0 ? 0 : count - 1)
            let to = clamp(try bound(stop), stride > 0 ? count : -1)
            return JinjaArithmetic.steps(from: from, to: to, by: stride)
        }
        switch value {
        case .list(let a): return .list(try indices(a.count).map { a[$0] })
        case .tuple(let a): return .tuple(try indices(a.count).map { a[$0] })
        case .string(let s):
            let scalars = Array(s.unicodeScalars)
            var out = String.UnicodeScalarView()
            for i in try indices(scalars.count) { out.append(scalars[i]) }
            return .string(String(out))
        case .undefined(let hint): throw JinjaError.undefined(hint)
        default: throw JinjaError.runtime("'\(value.typeName)' object is not subscriptable")
        }
    }

    /// The items a `for` loop (or a filter) walks: list items, string characters, dictionary keys.
    func iterate(_ value: JinjaValue) throws -> [JinjaValue] {
        switch value {
        case .list(let a), .tuple(let a): return a
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .dict(let d): return d.keys.map(\.value)
        case .undefined: return []
        default: throw JinjaError.runtime("'\(value.typeName)' object is not iterable")
        }
    }

    // MARK: Calls

    mutating func call(_ callee: JinjaValue, _ arguments: JinjaCallArguments) throws -> JinjaValue {
        switch callee {
        case .function(let name): return try callGlobal(name, arguments)
        case .boundMethod(let receiver, let name): return try callMethod(receiver, name, arguments)
        case .macro(let macro): return try callMacro(macro, arguments)
        case .undefined(let hint): throw JinjaError.undefined(hint)
        default: throw JinjaError.runtime("'\(callee.typeName)' object is not callable")
        }
    }

    private mutating func callMacro(_ macro: JinjaMacro, _ arguments: JinjaCallArguments) throws -> JinjaValue {
        guard arguments.positional.count <= macro.parameters.count else {
            throw JinjaError.runtime("macro '\(macro.name)' takes not more than \(macro.parameters.count) argument(s)")
        }
        var frame: [String: JinjaValue] = [:]
        for (i, parameter) in macro.parameters.enumerated() {
            if i < arguments.positional.count {
                frame[parameter] = arguments.positional[i]
            } else if let given = arguments.keywords[parameter] {
                frame[parameter] = given
            } else if let fallback = macro.defaults[parameter] {
                frame[parameter] = try evaluate(fallback)
            } else {
                frame[parameter] = .undefined(hint: "parameter '\(parameter)' was not provided")
            }
        }
        if let unknown = arguments.keywordOrder.first(where: { !macro.parameters.contains($0) }) {
            throw JinjaError.runtime("macro '\(macro.name)' takes no keyword argument '\(unknown)'")
        }
        // A macro sees the template's top level and its own parameters, not its caller's loop variables.
        let callerScopes = scopes
        scopes = [scopes[0], frame]
        defer { scopes = callerScopes }
        var out = ""
        _ = try execute(macro.body, into: &out)
        return .string(out)
    }
}

/// Evaluated call arguments; keyword order is kept for error messages and namespace().
struct JinjaCallArguments {
    var positional: [JinjaValue]
    var keywords: [String: JinjaValue]
    var keywordOrder: [String]

    /// The argument at `position`, or given as `name`.
    func value(_ position: Int, _ name: String) -> JinjaValue? {
        position < positional.count ? positional[position] : keywords[name]
    }
}

extension JinjaValue {
    /// Lists and tuples as a list (for unpacking).
    var asSequence: JinjaValue? {
        switch self {
        case .list(let a), .tuple(let a): return .list(a)
        default: return nil
        }
    }
}
