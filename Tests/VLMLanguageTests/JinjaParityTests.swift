import Foundation
import Testing
@testable import VLMLanguage

/// The interpreter against Python jinja2 (scripts/fixtures/make_template_fixtures.py): real chat templates
/// on real conversations, and one small template per construct.
@Suite struct JinjaParityTests {
    static let directory = TestPaths.fixtures.appendingPathComponent("templates")
    static let fixture: RenderingFixture = {
        let data = try! Data(contentsOf: directory.appendingPathComponent("renderings.json"))
        return try! JSONDecoder().decode(RenderingFixture.self, from: data)
    }()

    /// The instant the generator pinned strftime_now to, in the local time zone (as Python's datetime.now()).
    static var fixedNow: Date {
        let f = fixture.now.split(whereSeparator: { "-T:".contains($0) }).map { Int($0)! }
        var components = DateComponents(year: f[0], month: f[1], day: f[2], hour: f[3], minute: f[4], second: f[5])
        components.timeZone = TimeZone.current
        return Calendar(identifier: .gregorian).date(from: components)!
    }

    static func render(_ template: String, _ context: [String: JSONValue]) throws -> String {
        try JinjaTemplate(template).render(context.mapValues(\.jinja), now: fixedNow)
    }

    @Test func featuresMatchJinja2() throws {
        #expect(Self.fixture.features.count > 50)
        for feature in Self.fixture.features {
            let result = Result { try Self.render(feature.template, feature.context) }
            check(result, feature.output, feature.error, feature.name ?? "")
        }
    }

    @Test func chatTemplatesMatchJinja2() throws {
        #expect(Set(Self.fixture.cases.map(\.template)) == Set(Self.fixture.templates.keys))
        for c in Self.fixture.cases {
            let text = try String(contentsOf: Self.directory.appendingPathComponent(c.template + ".jinja"), encoding: .utf8)
            let result = Result { try Self.render(text, c.context) }
            check(result, c.output, c.error, "\(c.template) / \(c.conversation ?? "")")
        }
    }

    private func check(_ result: Result<String, Error>, _ output: String?, _ error: String?, _ label: String) {
        switch (result, output) {
        case (.success(let rendered), let expected?):
            #expect(rendered == expected, "\(label)")
        case (.failure(let thrown), let expected?):
            Issue.record("\(label): threw \(thrown), jinja2 rendered \(expected.debugDescription)")
        case (.success(let rendered), nil):
            Issue.record("\(label): rendered \(rendered.debugDescription), jinja2 raised \(error ?? "")")
        case (.failure(let thrown), nil):
            // A template's own raise_exception must carry its message through.
            if let error, error.hasPrefix("TemplateError: ") {
                #expect(thrown as? JinjaError == .raised(String(error.dropFirst("TemplateError: ".count))), "\(label)")
            }
        }
    }
}

struct RenderingFixture: Decodable, Sendable {
    /// A chat template case (template is a file name, with a conversation) or a feature (template is the text).
    struct Rendering: Decodable, Sendable {
        var name: String?
        var template: String
        var conversation: String?
        var context: [String: JSONValue]
        var output: String?
        var error: String?
    }
    struct Source: Decodable, Sendable { var source: String }
    var now: String
    var templates: [String: Source]
    var cases: [Rendering]
    var features: [Rendering]
}

/// A JSON value read back as a JinjaValue; object keys come out sorted, the order the generator built them in.
indirect enum JSONValue: Decodable, Sendable {
    case null, bool(Bool), int(Int), double(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    var jinja: JinjaValue {
        switch self {
        case .null: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        case .array(let a): return .list(a.map(\.jinja))
        case .object(let o): return .dict(JinjaDict(o.keys.sorted().map { ($0, o[$0]!.jinja) }))
        }
    }
}
