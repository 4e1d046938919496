import Foundation
import Testing
@testable import VLMWire

@Suite struct MessageTests {
    func parse(_ text: String) -> IncomingMessage { IncomingMessage.parse(Data(text.utf8)) }

    func error(of message: IncomingMessage) -> (RequestID?, RPCError)? {
        if case .invalid(let id, let error) = message { return (id, error) }
        return nil
    }

    @Test func requestWithIntAndStringIDs() {
        guard case .request(let id, let method, let params) = parse(#"{"jsonrpc":"2.0","id":7,"method":"ping","params":{"a":1}}"#)
        else { Issue.record("not a request"); return }
        #expect(id == .int(7) && method == "ping" && params?["a"] == .int(1))
        guard case .request(let sid, _, _) = parse(#"{"jsonrpc":"2.0","id":"x-1","method":"ping"}"#) else {
            Issue.record("not a request"); return
        }
        #expect(sid == .string("x-1"))
    }

    @Test func notificationHasNoID() {
        guard case .notification(let method, _) = parse(#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}"#)
        else { Issue.record("not a notification"); return }
        #expect(method == "$/cancelRequest")
    }

    @Test func invalidJSONIsAParseError() {
        #expect(error(of: parse("{not json"))?.1.code == ErrorCode.parseError)
        #expect(error(of: IncomingMessage.parse(Data([0x7B, 0xFF, 0x7D])))?.1.code == ErrorCode.parseError)
    }

    @Test func batchesAreInvalidRequests() {
        let (id, rpc) = error(of: parse(#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#))!
        #expect(id == nil && rpc.code == ErrorCode.invalidRequest && rpc.message.contains("batch"))
    }

    @Test(arguments: [
        #"{"id":1,"method":"ping"}"#,  // no jsonrpc
        #"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
        #"{"jsonrpc":"2.0","id":1,"method":5}"#,
        #"{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}"#,
        #"{"jsonrpc":"2.0","id":1}"#,
        #"42"#,
    ])
    func malformedRequestsAreInvalidAndKeepTheirID(text: String) {
        let (id, rpc) = error(of: parse(text))!
        #expect(rpc.code == ErrorCode.invalidRequest)
        if text.contains(#""id":1"#) { #expect(id == .int(1)) }
    }

    @Test func objectAndBoolIDsAreRejected() {
        #expect(error(of: parse(#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#))?.1.code == ErrorCode.invalidRequest)
        #expect(error(of: parse(#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#))?.1.code == ErrorCode.invalidRequest)
    }

    @Test func errorReplyEncodesNullID() throws {
        let body = OutgoingMessage.error(id: nil, .invalidRequest("x"))
        let value = try JSONCoding.decode(JSONValue.self, from: body)
        #expect(value["id"] == .null)
        #expect(value["error"]?["code"] == .int(-32600))
    }

    struct Typed: Decodable { let name: String; let items: [Int] }

    @Test func decodingErrorsNameTheFieldAndTheExpectedType() {
        func message(_ json: JSONValue) -> String {
            do { _ = try JSONCoding.convert(json, to: Typed.self); return "" } catch { return describe(error) }
        }
        #expect(message(["items": [1]]) == "params.name: required field is missing")
        #expect(message(["name": 3, "items": [1]]) == "params.name: expected a string")
        #expect(message(["name": "a", "items": [1, "b"]]) == "params.items[1]: expected an integer")
    }

    @Test func jsonValueRoundTripsIntegersAndDoubles() throws {
        let value: JSONValue = ["i": 3, "d": 2.5, "s": "é", "a": [true, nil]]
        let back = try JSONCoding.decode(JSONValue.self, from: try JSONCoding.encode(value))
        #expect(back == value)
    }
}
