import Foundation
import Testing
@testable import VLMLanguage

/// Hostile templates: every one must render or throw — a crash or a hang fails the whole test run.
@Suite struct JinjaRobustnessTests {
    static let context: [String: JinjaValue] = ChatTemplate.context(
        [ChatMessage(role: "system", content: "s"), ChatMessage(role: "user", content: "u"),
         ChatMessage(role: "assistant", content: "a")], addGenerationPrompt: true, ChatSpecialTokens(bos: "<s>", eos: "</s>"))

    static func outcome(_ template: String, limits: JinjaLimits = JinjaLimits()) -> Result<String, JinjaError> {
        Result { try JinjaTemplate(template, limits: limits).render(context) }.mapError { $0 as! JinjaError }
    }

    static func isLimit(_ r: Result<String, JinjaError>) -> Bool {
        if case .failure(.limit) = r { return true } else { return false }
    }

    /// Every prefix of the real templates: most are broken Jinja, none may crash.
    @Test func truncatedTemplatesThrowOrRender() throws {
        var rendered = 0, thrown = 0
        for name in ["smollm2", "qwen2.5-instruct", "qwen3", "llama-3.1-instruct", "gemma-3-it"] {
            let scalars = Array(try ChatTemplateTests.templateText(name).unicodeScalars)
            for end in stride(from: 0, to: scalars.count, by: 7) {
                var text = ""
                text.unicodeScalars.append(contentsOf: scalars[..<end])
                switch Self.outcome(text) {
                case .success: rendered += 1
                case .failure: thrown += 1
                }
            }
        }
        #expect(rendered > 0 && thrown > 100)
    }

    /// Random strings of Jinja fragments from a fixed seed.
    @Test func randomTemplatesThrowOrRender() {
        let pieces = ["{{", "}}", "{%", "%}", "{#", "#}", "-", "+", " ", "\n", "if", "elif", "else", "endif", "for", "in",
                      "endfor", "set", "=", "macro", "endmacro", "(", ")", "[", "]", "{", "}", ":", ",", ".", "|", "~", "*",
                      "**", "//", "%", "'", "\"", "\\", "x", "loop", "messages", "ns", "namespace", "raise_exception",
                      "not", "is", "defined", "none", "1", "-1", "0", "length", "trim", "tojson", "raw", "endraw", "é"]
        var state: UInt64 = 0x9E3779B97F4A7C15
        func nextIndex(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        var outcomes: [Bool] = []
        for _ in 0..<3000 {
            let template = (0..<(1 + nextIndex(40))).map { _ in pieces[nextIndex(pieces.count)] }.joined()
            if case .success = Self.outcome(template) { outcomes.append(true) } else { outcomes.append(false) }
        }
        #expect(outcomes.contains(true) && outcomes.contains(false))
    }

    @Test func deepNestingHitsTheDepthLimit() {
        for template in ["{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}",
                         "{{ " + String(repeating: "not ", count: 5000) + "1 }}",
                         "{{ " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + " }}",
                         String(repeating: "{% if true %}", count: 5000),
                         "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
                         "{% set ns = namespace(x=none) %}{% for i in range(10000) %}{% set ns.x = [ns.x] %}{% endfor %}"] {
            #expect(Self.isLimit(Self.outcome(template)), "\(template.prefix(40))")
        }
    }

    /// Extreme numbers and sizes: an error or a value, never a trap.
    @Test func extremeArgumentsThrowOrRender() {
        let max = "9223372036854775807", min = "(-9223372036854775807 - 1)"
        for template in ["{{ range(-\(max), \(max))|length }}", "{{ range(\(max), -\(max), -1)|length }}",
                         "{{ 'a' * \(max) }}", "{{ [1] * \(max) }}", "{{ \(min) is divisibleby(-1) }}", "{{ \(max) + 1 }}",
                         "{{ -\(min) }}", "{{ \(min) // -1 }}", "{{ \(min) % -1 }}", "{{ \(min)|abs }}", "{{ 10 ** 30 }}",
                         "{{ 99999999999999999999 }}", "{{ (1e308 * 10)|int }}", "{{ 'x'[\(max)] }}", "{{ 'abc'[-\(max):\(max):-\(max)] }}",
                         "{{ [1, 2][::\(min)] }}", "{{ 'abc'[1::\(max)] }}", "{{ range(1, \(max), \(max) - 1)|list }}", "{{ 'x'.split('') }}", "{{ '{'.format() }}", "{{ 'a'.replace('', 'x' * 4000000) }}",
                         "{{ {}|tojson(indent=\(max)) }}", "{{ 'a'|indent(\(max)) }}", "{{ strftime_now('%') }}"] {
            _ = Self.outcome(template)
        }
        #expect(Self.outcome("{{ 'a' * \(max) }}") == .failure(.limit("string longer than 4194304 bytes")))
        #expect(Self.outcome("{{ \(min) is divisibleby(-1) }}") == .success("True"))
        #expect(Self.outcome("{{ 'abc'[1::\(max)] }} {{ range(1, \(max), \(max) - 1)|list }}") == .success("b [1]"))
    }

    @Test func outputAndIterationsAreBounded() {
        var small = JinjaLimits()
        small.maxOutputBytes = 1000
        small.maxLoopIterations = 50
        #expect(Self.isLimit(Self.outcome("{% for i in range(40) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}", limits: small)))
        #expect(Self.isLimit(Self.outcome("{% for i in range(10) %}{% for j in range(10) %}{% endfor %}{% endfor %}", limits: small)))
        #expect(Self.isLimit(Self.outcome("{{ range(1000000000) }}")))
        #expect(Self.isLimit(Self.outcome("{{ 'ab' * 1000000000000 }}")))
        #expect(Self.isLimit(Self.outcome("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")))
        // 2,000 copies of a 1 MB string: within every other bound, stopped by the work budget.
        #expect(Self.outcome("{% set ns = namespace(s='x' * 1000000, n=0) %}{% for i in range(2000) %}"
                             + "{% set ns.n = (ns.s ~ i)|length %}{% endfor %}") == .failure(.limit("more than 67108864 bytes of intermediate values")))
        // 100 levels of indentation on 50,000 lines: refused before the text is built.
        #expect(Self.outcome("{{ " + String(repeating: "[", count: 45) + "range(50000)|list" + String(repeating: "]", count: 45)
                             + "|tojson(indent=1000) }}") == .failure(.limit("tojson text longer than 4194304 bytes")))
        #expect(Self.outcome("{{ 2 ** 64 }}") == .failure(.runtime("integer overflow")))
        #expect(Self.outcome("{{ 1 // 0 }}") == .failure(.runtime("integer division or modulo by zero")))
        #expect(Self.outcome("{{ [1][::0] }}") == .failure(.runtime("slice step cannot be zero")))
    }
}
