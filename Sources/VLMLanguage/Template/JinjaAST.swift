// The syntax tree of a template: statements (JinjaNode) holding expressions (JinjaExpression).

public indirect enum JinjaNode: Sendable, Equatable {
    case text(String)
    /// `{{ expression }}`
    case output(JinjaExpression)
    case forLoop(JinjaForLoop)
    /// `{% if %}...{% elif %}...{% else %}...{% endif %}`: the first branch whose condition holds.
    case conditional(branches: [JinjaBranch], otherwise: [JinjaNode])
    /// `{% set target = value %}`
    case assign(JinjaTarget, JinjaExpression)
    /// `{% set name %}body{% endset %}`
    case assignBlock(String, [JinjaNode])
    case macro(JinjaMacro)
    case breakLoop, continueLoop
    /// Hugging Face's `{% generation %}` marks assistant text for masking; it renders its body unchanged.
    case generation([JinjaNode])
}

public struct JinjaBranch: Sendable, Equatable {
    public var condition: JinjaExpression
    public var body: [JinjaNode]
}

public struct JinjaForLoop: Sendable, Equatable {
    /// The loop variable, or several unpacked from each item (`for key, value in ...`).
    public var variables: [String]
    public var iterable: JinjaExpression
    /// `for x in xs if condition`: items failing it are skipped before `loop` counts them.
    public var filter: JinjaExpression?
    public var body: [JinjaNode]
    /// Rendered when no item was iterated.
    public var otherwise: [JinjaNode]
}

public enum JinjaTarget: Sendable, Equatable {
    case name(String)
    case names([String])
    /// `ns.attribute`, allowed on namespaces only.
    case attribute(String, String)
}

public indirect enum JinjaExpression: Sendable, Equatable {
    case literal(JinjaValue)
    case name(String)
    case list([JinjaExpression])
    case tuple([JinjaExpression])
    case dict([JinjaPair])
    case attribute(JinjaExpression, String)
    case item(JinjaExpression, JinjaExpression)
    case slice(JinjaExpression, start: JinjaExpression?, stop: JinjaExpression?, step: JinjaExpression?)
    case call(JinjaExpression, JinjaArguments)
    /// `value | name(arguments)`
    case filter(JinjaExpression, String, JinjaArguments)
    /// `value is [not] name(arguments)`
    case test(JinjaExpression, String, JinjaArguments, negated: Bool)
    /// `not`, unary `-` and `+`
    case unary(String, JinjaExpression)
    /// Arithmetic, `~`, `and`, `or`.
    case binary(String, JinjaExpression, JinjaExpression)
    /// Comparisons, `in` and `not in`, chained: `a < b < c` is `a < b and b < c`, with b evaluated once.
    case comparison(JinjaExpression, [JinjaComparison])
    /// `value if condition else otherwise` (a missing else gives undefined).
    case conditional(value: JinjaExpression, condition: JinjaExpression, otherwise: JinjaExpression?)
}

public struct JinjaPair: Sendable, Equatable {
    public var key: JinjaExpression
    public var value: JinjaExpression
}

public struct JinjaComparison: Sendable, Equatable {
    public var op: String
    public var operand: JinjaExpression
}

public struct JinjaArguments: Sendable, Equatable {
    public var positional: [JinjaExpression] = []
    public var keywords: [JinjaKeyword] = []
    public static let none = JinjaArguments()
}

public struct JinjaKeyword: Sendable, Equatable {
    public var name: String
    public var value: JinjaExpression
}
