// Tokens -> syntax tree, by recursive descent with jinja2's operator precedence (loosest first):
//   conditional (`a if c else b`) < or < and < not < comparisons and `in` < `+ -` < `~` < `* / // %`
//   < `**` < unary `- +` < primary with postfixes (`.name`, `[...]`, `(...)`) and then `|filter`, `is test`.

struct JinjaParser {
    private let tokens: [JinjaToken]
    private var index = 0
    private var depth = 0
    private let maxDepth: Int

    /// Tags jinja2 knows that this interpreter does not implement: reported as unsupported, not as syntax errors.
    private static let unsupportedTags: Set<String> = ["block", "extends", "include", "import", "from", "with",
                                                       "autoescape", "filter", "call"]

    init(tokens: [JinjaToken], maxDepth: Int) {
        self.tokens = tokens
        self.maxDepth = maxDepth
    }

    static func parse(_ tokens: [JinjaToken], maxDepth: Int) throws -> [JinjaNode] {
        var parser = JinjaParser(tokens: tokens, maxDepth: maxDepth)
        let (body, terminator) = try parser.parseNodes(until: [])
        if let terminator { throw JinjaError.syntax("Encountered unknown tag '\(terminator)'", line: parser.line) }
        return body
    }

    // MARK: Statements

    /// Nodes up to one of the `until` tags (its name is returned, the tag's name consumed) or the end.
    private mutating func parseNodes(until: Set<String>) throws -> ([JinjaNode], String?) {
        try enter()
        defer { depth -= 1 }
        var nodes: [JinjaNode] = []
        while true {
            let token = next()
            switch token.kind {
            case .end:
                index -= 1
                if !until.isEmpty {
                    throw JinjaError.syntax("Unexpected end of template; expected one of: \(until.sorted().joined(separator: ", "))", line: token.line)
                }
                return (nodes, nil)
            case .text(let text):
                nodes.append(.text(text))
            case .variableBegin:
                nodes.append(.output(try parseTupleOrExpression()))
                try expect(.variableEnd, "end of print statement")
            case .blockBegin:
                let tag = try expectName()
                if until.contains(tag) { return (nodes, tag) }
                nodes.append(try parseStatement(tag))
            default:
                throw JinjaError.syntax("unexpected token", line: token.line)
            }
        }
    }

    private mutating func parseStatement(_ tag: String) throws -> JinjaNode {
        switch tag {
        case "for": return try parseFor()
        case "if": return try parseIf()
        case "set": return try parseSet()
        case "macro": return try parseMacro()
        case "break", "continue":
            try expect(.blockEnd, "end of statement block")
            return tag == "break" ? .breakLoop : .continueLoop
        case "generation":
            try expect(.blockEnd, "end of statement block")
            let body = try parseBody(until: "endgeneration")
            return .generation(body)
        default:
            if JinjaParser.unsupportedTags.contains(tag) { throw JinjaError.unsupported("the '\(tag)' tag") }
            throw JinjaError.syntax("Encountered unknown tag '\(tag)'", line: line)
        }
    }

    /// A block body closed by `{% end %}`, nothing else allowed in between.
    private mutating func parseBody(until end: String) throws -> [JinjaNode] {
        let (body, _) = try parseNodes(until: [end])
        try expect(.blockEnd, "end of statement block")
        return body
    }

    private mutating func parseFor() throws -> JinjaNode {
        var variables = [try expectName()]
        while accept(.op(",")) { variables.append(try expectName()) }
        guard accept(.name("in")) else { throw JinjaError.syntax("expected 'in'", line: line) }
        let iterable = try parseOr()  // jinja2 parses the iterable without a conditional: `if` starts a filter
        var filter: JinjaExpression?
        if accept(.name("if")) { filter = try parseExpression() }
        if accept(.name("recursive")) { throw JinjaError.unsupported("recursive loops") }
        try expect(.blockEnd, "end of statement block")
        let (body, terminator) = try parseNodes(until: ["else", "endfor"])
        var otherwise: [JinjaNode] = []
        try expect(.blockEnd, "end of statement block")
        if terminator == "else" {
            (otherwise, _) = try parseNodes(until: ["endfor"])
            try expect(.blockEnd, "end of statement block")
        }
        return .forLoop(JinjaForLoop(variables: variables, iterable: iterable, filter: filter, body: body, otherwise: otherwise))
    }

    private mutating func parseIf() throws -> JinjaNode {
        var branches: [JinjaBranch] = []
        var condition = try parseExpression()
        while true {
            try expect(.blockEnd, "end of statement block")
            let (body, terminator) = try parseNodes(until: ["elif", "else", "endif"])
            branches.append(JinjaBranch(condition: condition, body: body))
            switch terminator {
            case "elif":
                condition = try parseExpression()
            case "else":
                try expect(.blockEnd, "end of statement block")
                return .conditional(branches: branches, otherwise: try parseBody(until: "endif"))
            default:
                try expect(.blockEnd, "end of statement block")
                return .conditional(branches: branches, otherwise: [])
            }
        }
    }

    private mutating func parseSet() throws -> JinjaNode {
        let first = try expectName()
        if accept(.op(".")) {
            let attribute = try expectName()
            try expect(.op("="), "'='")
            let value = try parseExpression()
            try expect(.blockEnd, "end of statement block")
            return .assign(.attribute(first, attribute), value)
        }
        var names = [first]
        while accept(.op(",")) { names.append(try expectName()) }
        if names.count == 1, accept(.blockEnd) {
            return .assignBlock(first, try parseBody(until: "endset"))
        }
        try expect(.op("="), "'='")
        let value = try parseTupleOrExpression()
        try expect(.blockEnd, "end of statement block")
        return .assign(names.count == 1 ? .name(first) : .names(names), value)
    }

    private mutating func parseMacro() throws -> JinjaNode {
        let name = try expectName()
        try expect(.op("("), "'('")
        var parameters: [String] = []
        var defaults: [String: JinjaExpression] = [:]
        while !accept(.op(")")) {
            if !parameters.isEmpty { try expect(.op(","), "','") }
            let parameter = try expectName()
            parameters.append(parameter)
            if accept(.op("=")) { defaults[parameter] = try parseExpression() }
        }
        try expect(.blockEnd, "end of statement block")
        let body = try parseBody(until: "endmacro")
        return .macro(JinjaMacro(name: name, parameters: parameters, defaults: defaults, body: body))
    }

    // MARK: Expressions

    mutating func parseExpression() throws -> JinjaExpression {
        try enter()
        defer { depth -= 1 }
        let value = try parseOr()
        guard accept(.name("if")) else { return value }
        let condition = try parseOr()
        let otherwise = accept(.name("else")) ? try parseExpression() : nil
        return .conditional(value: value, condition: condition, otherwise: otherwise)
    }

    /// `a, b` as a tuple (in `set`), else one expression.
    private mutating func parseTupleOrExpression() throws -> JinjaExpression {
        let first = try parseExpression()
        guard check(.op(",")) else { return first }
        var items = [first]
        while accept(.op(",")) { items.append(try parseExpression()) }
        return .tuple(items)
    }

    private mutating func parseOr() throws -> JinjaExpression {
        var left = try parseAnd()
        while accept(.name("or")) { left = .binary("or", left, try parseAnd()) }
        return left
    }

    private mutating func parseAnd() throws -> JinjaExpression {
        var left = try parseNot()
        while accept(.name("and")) { left = .binary("and", left, try parseNot()) }
        return left
    }

    private mutating func parseNot() throws -> JinjaExpression {
        if accept(.name("not")) {
            try enter()
            defer { depth -= 1 }
            return .unary("not", try parseNot())
        }
        return try parseComparison()
    }

    private mutating func parseComparison() throws -> JinjaExpression {
        let first = try parseSum()
        var rest: [JinjaComparison] = []
        while true {
            if case .op(let op) = peek.kind, ["==", "!=", "<", "<=", ">", ">="].contains(op) {
                index += 1
                rest.append(JinjaComparison(op: op, operand: try parseSum()))
            } else if accept(.name("in")) {
                rest.append(JinjaComparison(op: "in", operand: try parseSum()))
            } else if check(.name("not")), tokens[index + 1].kind == .name("in") {
                index += 2
                rest.append(JinjaComparison(op: "not in", operand: try parseSum()))
            } else {
                return rest.isEmpty ? first : .comparison(first, rest)
            }
        }
    }

    private mutating func parseSum() throws -> JinjaExpression {
        var left = try parseConcat()
        while let op = acceptOperator(["+", "-"]) { left = .binary(op, left, try parseConcat()) }
        return left
    }

    private mutating func parseConcat() throws -> JinjaExpression {
        var left = try parseProduct()
        while acceptOperator(["~"]) != nil { left = .binary("~", left, try parseProduct()) }
        return left
    }

    private mutating func parseProduct() throws -> JinjaExpression {
        var left = try parsePower()
        while let op = acceptOperator(["*", "/", "//", "%"]) { left = .binary(op, left, try parsePower()) }
        return left
    }

    private mutating func parsePower() throws -> JinjaExpression {
        var left = try parseUnary()
        while acceptOperator(["**"]) != nil { left = .binary("**", left, try parseUnary()) }
        return left
    }

    /// jinja2 applies filters and tests after the unary operator: `-x|abs` is `(-x)|abs`.
    private mutating func parseUnary(withFilters: Bool = true) throws -> JinjaExpression {
        try enter()
        defer { depth -= 1 }
        var node: JinjaExpression
        if let op = acceptOperator(["-", "+"]) {
            node = .unary(op, try parseUnary(withFilters: false))
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        return withFilters ? try parseFiltersAndTests(node) : node
    }

    private mutating func parsePrimary() throws -> JinjaExpression {
        let token = next()
        switch token.kind {
        case .name(let name):
            switch name {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(name)
            }
        case .string(var s):
            while case .string(let more) = peek.kind { s += more; index += 1 }  // adjacent literals concatenate
            return .literal(.string(s))
        case .integer(let i): return .literal(.int(i))
        case .float(let d): return .literal(.double(d))
        case .op("("):
            if accept(.op(")")) { return .tuple([]) }
            let first = try parseExpression()
            guard check(.op(",")) else {
                try expect(.op(")"), "')'")
                return first
            }
            var items = [first]
            while accept(.op(",")), !check(.op(")")) { items.append(try parseExpression()) }
            try expect(.op(")"), "')'")
            return .tuple(items)
        case .op("["):
            var items: [JinjaExpression] = []
            while !accept(.op("]")) {
                if !items.isEmpty { try expect(.op(","), "','"); if accept(.op("]")) { break } }
                items.append(try parseExpression())
            }
            return .list(items)
        case .op("{"):
            var pairs: [JinjaPair] = []
            while !accept(.op("}")) {
                if !pairs.isEmpty { try expect(.op(","), "','"); if accept(.op("}")) { break } }
                let key = try parseExpression()
                try expect(.op(":"), "':'")
                pairs.append(JinjaPair(key: key, value: try parseExpression()))
            }
            return .dict(pairs)
        default:
            throw JinjaError.syntax("unexpected \(describe(token))", line: token.line)
        }
    }

    private mutating func parsePostfix(_ base: JinjaExpression) throws -> JinjaExpression {
        var node = base
        while true {
            if accept(.op(".")) {
                switch next().kind {
                case .name(let name): node = .attribute(node, name)
                case .integer(let i): node = .item(node, .literal(.int(i)))
                default: throw JinjaError.syntax("expected an attribute name after '.'", line: line)
                }
            } else if accept(.op("[")) {
                node = try parseSubscript(node)
            } else if check(.op("(")) {
                node = .call(node, try parseArguments())
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscript(_ base: JinjaExpression) throws -> JinjaExpression {
        var parts: [JinjaExpression?] = [nil]
        var isSlice = false
        while !accept(.op("]")) {
            if accept(.op(":")) {
                isSlice = true
                guard parts.count < 3 else { throw JinjaError.syntax("too many ':' in a slice", line: line) }
                parts.append(nil)
            } else {
                guard parts[parts.count - 1] == nil else { throw JinjaError.syntax("expected ']'", line: line) }
                parts[parts.count - 1] = try parseExpression()
            }
        }
        if !isSlice {
            guard let key = parts[0] else { throw JinjaError.syntax("expected a subscript", line: line) }
            return .item(base, key)
        }
        while parts.count < 3 { parts.append(nil) }
        return .slice(base, start: parts[0], stop: parts[1], step: parts[2])
    }

    private mutating func parseFiltersAndTests(_ base: JinjaExpression) throws -> JinjaExpression {
        var node = base
        while true {
            if accept(.op("|")) {
                let name = try expectName()
                let arguments = check(.op("(")) ? try parseArguments() : .none
                node = .filter(node, name, arguments)
            } else if accept(.name("is")) {
                let negated = accept(.name("not"))
                let name = try expectName()
                var arguments = JinjaArguments.none
                if check(.op("(")) {
                    arguments = try parseArguments()
                } else if startsBareTestArgument {
                    arguments.positional = [try parsePostfix(try parsePrimary())]
                }
                node = .test(node, name, arguments, negated: negated)
            } else if check(.op("(")) {
                node = .call(node, try parseArguments())
            } else {
                return node
            }
        }
    }

    /// `x is divisibleby 3`: jinja2 takes one argument without parentheses when a primary follows.
    private var startsBareTestArgument: Bool {
        switch peek.kind {
        case .string, .integer, .float, .op("["), .op("{"): return true
        case .name(let n): return !["else", "or", "and", "if", "is", "in", "not"].contains(n)
        default: return false
        }
    }

    private mutating func parseArguments() throws -> JinjaArguments {
        try expect(.op("("), "'('")
        var arguments = JinjaArguments()
        while !accept(.op(")")) {
            if !arguments.positional.isEmpty || !arguments.keywords.isEmpty { try expect(.op(","), "','"); if accept(.op(")")) { break } }
            if case .name(let name) = peek.kind, tokens[index + 1].kind == .op("=") {
                index += 2
                arguments.keywords.append(JinjaKeyword(name: name, value: try parseExpression()))
            } else {
                guard arguments.keywords.isEmpty else { throw JinjaError.syntax("positional argument after keyword argument", line: line) }
                arguments.positional.append(try parseExpression())
            }
        }
        return arguments
    }

    // MARK: Token helpers

    private var peek: JinjaToken { tokens[index] }
    private var line: Int { tokens[min(index, tokens.count - 1)].line }

    private mutating func next() -> JinjaToken {
        let token = tokens[index]
        if index < tokens.count - 1 { index += 1 }  // the end token is never consumed
        return token
    }

    private func check(_ kind: JinjaToken.Kind) -> Bool { peek.kind == kind }

    private mutating func accept(_ kind: JinjaToken.Kind) -> Bool {
        guard check(kind) else { return false }
        index += 1
        return true
    }

    private mutating func acceptOperator(_ ops: [String]) -> String? {
        guard case .op(let op) = peek.kind, ops.contains(op) else { return nil }
        index += 1
        return op
    }

    private mutating func expect(_ kind: JinjaToken.Kind, _ what: String) throws {
        let token = next()
        guard token.kind == kind else {
            if token.kind == .end { throw JinjaError.syntax("unexpected end of template, expected \(what)", line: token.line) }
            throw JinjaError.syntax("expected \(what), got \(describe(token))", line: token.line)
        }
    }

    private mutating func expectName() throws -> String {
        let token = next()
        guard case .name(let name) = token.kind else {
            throw JinjaError.syntax("expected a name, got \(describe(token))", line: token.line)
        }
        return name
    }

    private mutating func enter() throws {
        depth += 1
        if depth > maxDepth { throw JinjaError.limit("template nesting deeper than \(maxDepth)") }
    }

    private func describe(_ token: JinjaToken) -> String {
        switch token.kind {
        case .text: return "text"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "'%}'"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "'}}'"
        case .name(let n): return "'\(n)'"
        case .string: return "a string"
        case .integer(let i): return "'\(i)'"
        case .float(let d): return "'\(d)'"
        case .op(let op): return "'\(op)'"
        case .end: return "end of template"
        }
    }
}
