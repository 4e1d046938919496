import Foundation
import Testing
@testable import VLMWire

@Suite struct JSONParserTests {
    func parse(_ text: String, maxDepth: Int = 64) throws -> JSONParser.Parsed {
        try JSONParser.parse(Data(text.utf8), maxDepth: maxDepth)
    }

    /// Foundation's JSONSerialization is the independent reference for what a document means.
    func reference(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }

    @Test(arguments: [
        #"{"a":[1,-2,3.5,1e3,-0.25E-2,true,false,null],"b":{"c":"d\"e\\f\/g\b\f\n\r\t"},"u":"\u00e9\ud83d\ude42 ok"}"#,
        #"  [ ]  "#, #"{}"#, #""plain""#, "9223372036854775807", "-9223372036854775808", "18446744073709551616",
        #"{"nested":[[[{"x":[{}]}]]]}"#, #"["héllo wörld — 日本語 🙂"]"#,
    ])
    func agreesWithFoundationOnValidDocuments(text: String) throws {
        let ours = try parse(text).value
        let theirs = try JSONCoding.decode(JSONValue.self, from: JSONSerialization.data(withJSONObject: reference(text), options: [.fragmentsAllowed]))
        #expect(ours == theirs || ours.doubleValue == theirs.doubleValue)
    }

    @Test func integersStayExactAndLargeOnesBecomeDoubles() throws {
        #expect(try parse("9007199254740993").value == .int(9_007_199_254_740_993))
        #expect(try parse("18446744073709551616").value == .double(18_446_744_073_709_551_616))
        #expect(try parse("2.0").value == .double(2))
    }

    @Test(arguments: [
        "", "[", "{", #"{"a"}"#, #"{"a":}"#, "[1,]", "[1 2]", "01", "-", "1.", ".5", "1e", "+1", "tru", "nul",
        #""abc"#, "\"a\u{01}b\"", #""\x""#, #""\u12g4""#, #""\ud800""#, #""\ud800\u0041""#, "[1]x", "1e400",
        #"{"a":1,}"#, "{1:2}",
    ])
    func malformedDocumentsAreRefused(text: String) {
        #expect(throws: JSONParser.Failure.self) { try parse(text) }
    }

    @Test func nestingUpToTheLimitParses() throws {
        let parsed = try parse(String(repeating: "[", count: 64) + String(repeating: "]", count: 64))
        #expect(parsed.depthExceededAt == nil)
    }

    @Test(arguments: [65, 513, 100_000])
    func nestingPastTheLimitIsReportedWithoutRecursion(depth: Int) throws {
        let text = #"{"id":5,"deep":"# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        let parsed = try parse(text)
        #expect(parsed.depthExceededAt != nil)
        #expect(parsed.value["id"] == .int(5))  // the rest is still read, for the error reply
    }

    @Test func unterminatedDeepBodyIsAnErrorNotACrash() {
        #expect(throws: JSONParser.Failure.self) { try parse(String(repeating: "[", count: 513)) }
    }

    @Test func rawTextOfANumericIDIsKept() throws {
        #expect(try parse(#"{"id":2.0,"x":{"id":3.5}}"#).rawNumericID == "2.0")
        #expect(try parse(#"{"id":"s"}"#).rawNumericID == nil)
    }

    @Test func duplicateMembersKeepTheFirst() throws {
        #expect(try parse(#"{"a":1,"a":2}"#).value["a"] == .int(1))
    }

    @Test func idSpelledWithAFractionIsEchoedAsSent() throws {
        let message = IncomingMessage.parse(Data(#"{"jsonrpc":"2.0","id":2.0,"method":"ping"}"#.utf8))
        guard case .request(let id, _, _) = message else { Issue.record("not a request"); return }
        #expect(id == .int(2))
        let reply = String(decoding: OutgoingMessage.response(id: id, encodedResult: Data("1".utf8)), as: UTF8.self)
        #expect(reply == #"{"jsonrpc":"2.0","id":2.0,"result":1}"#)
        let error = String(decoding: OutgoingMessage.error(id: id, .cancelled), as: UTF8.self)
        #expect(error.hasPrefix(#"{"jsonrpc":"2.0","id":2.0,"error":"#))
    }
}

/// protocol/README.md: non-finite floats are never sent; `null` instead.
@Suite struct NonFiniteEncodingTests {
    struct Result: Encodable {
        let embedding: [Float]
        let score: Double
        let label: String
    }

    @Test func nonFiniteNumbersEncodeAsNull() throws {
        let value = Result(embedding: [1, .nan, -.infinity, .infinity], score: .nan, label: "ok")
        let text = String(decoding: try JSONCoding.encode(value), as: UTF8.self)
        #expect(text == #"{"embedding":[1,null,null,null],"label":"ok","score":null}"#)
        #expect(try JSONSerialization.jsonObject(with: Data(text.utf8)) is [String: Any])
    }

    @Test func finiteResultsAreUnchanged() throws {
        let text = String(decoding: try JSONCoding.encode(Result(embedding: [0.5], score: 2, label: "x")), as: UTF8.self)
        #expect(text == #"{"embedding":[0.5],"label":"x","score":2}"#)
    }
}
