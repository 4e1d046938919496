// A small Jinja interpreter for chat templates: the subset that the common model families' templates
// use, with the environment Hugging Face's apply_chat_template sets up. Lexer -> parser -> evaluator:
//   JinjaLexer     text -> tokens, whitespace control (trim_blocks, lstrip_blocks, `-` markers)
//   JinjaParser    tokens -> JinjaNode / JinjaExpression trees
//   JinjaEvaluator the tree walk: scopes, loops, macros, calls
//   JinjaBuiltins  filters, tests, string and dict methods, globals
//   JinjaPython    Python's arithmetic, str methods, json.dumps and strftime, which templates rely on
//   JinjaValue     the values, printed and compared the way Python does
import Foundation

public enum JinjaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The template text is not valid Jinja.
    case syntax(String, line: Int)
    /// Valid Jinja that this interpreter does not implement (a tag, filter, test or method).
    case unsupported(String)
    /// A type error, an undefined value used where a value is needed, and the like.
    case runtime(String)
    case undefined(String)
    /// The template called raise_exception(message).
    case raised(String)
    /// A bound on depth, output size or loop iterations was hit.
    case limit(String)

    public var description: String {
        switch self {
        case .syntax(let message, let line): return "syntax error on line \(line): \(message)"
        case .unsupported(let what): return "unsupported: \(what)"
        case .runtime(let message): return message
        case .undefined(let hint): return hint
        case .raised(let message): return "raise_exception: \(message)"
        case .limit(let message): return "limit exceeded: \(message)"
        }
    }
}

/// Bounds that keep a hostile template from exhausting the stack, memory or time.
public struct JinjaLimits: Sendable, Equatable {
    public var maxDepth = 100
    public var maxOutputBytes = 4 << 20
    public var maxLoopIterations = 100_000
    /// Bytes of strings (and list slots) that operators, filters and calls may create in one render:
    /// bounds the time a loop of large concatenations takes.
    public var maxWorkBytes = 64 << 20
    public init() {}
}

public struct JinjaTemplate: Sendable, Equatable {
    public let source: String
    public let nodes: [JinjaNode]
    public let limits: JinjaLimits

    public init(_ source: String, limits: JinjaLimits = JinjaLimits()) throws {
        self.source = source
        self.limits = limits
        nodes = try JinjaParser.parse(try JinjaLexer.tokenize(source), maxDepth: limits.maxDepth)
    }

    /// The output for these variables. `now` is what strftime_now() formats.
    public func render(_ context: [String: JinjaValue], now: Date = Date()) throws -> String {
        var renderer = JinjaRenderer(context: context, limits: limits, now: now)
        var out = ""
        _ = try renderer.execute(nodes, into: &out)
        return out
    }
}
