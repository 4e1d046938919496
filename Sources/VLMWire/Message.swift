import Foundation

/// A JSON-RPC request id: an integer or a string (JSON-RPC 2.0 allows both; `null` only in error replies).
public enum RequestID: Sendable, Hashable, Codable, CustomStringConvertible {
    case int(Int64)
    case string(String)
    /// An integral id written with a fraction or an exponent (`2.0`, `1e3`): equal to `.int` of its
    /// value, but replies echo `text` so the client sees its id exactly as it sent it.
    case spelled(Int64, text: String)

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let i = try? container.decode(Int64.self) { self = .int(i) } else { self = .string(try container.decode(String.self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let i), .spelled(let i, _): try container.encode(i)
        case .string(let s): try container.encode(s)
        }
    }

    public var json: JSONValue {
        switch self {
        case .int(let i), .spelled(let i, _): return .int(i)
        case .string(let s): return .string(s)
        }
    }

    /// The id's JSON text as the client wrote it.
    public var wireText: Data {
        switch self {
        case .spelled(_, let text): return Data(text.utf8)
        default: return (try? JSONCoding.encode(self)) ?? Data("null".utf8)
        }
    }

    public init?(_ json: JSONValue) {
        switch json {
        case .int(let i): self = .int(i)
        case .string(let s): self = .string(s)
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: self = .int(Int64(d))
        default: return nil
        }
    }

    public static func == (a: RequestID, b: RequestID) -> Bool {
        switch (a.json, b.json) {
        case (.int(let x), .int(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(json) }

    public var description: String {
        switch self {
        case .int(let i): return String(i)
        case .spelled(_, let text): return text
        case .string(let s): return "\"\(s)\""
        }
    }
}

/// A message as it arrives, classified. Malformed messages carry the error to answer with and,
/// when one could be recovered, the id to answer to.
public enum IncomingMessage: Sendable {
    case request(id: RequestID, method: String, params: JSONValue?)
    case notification(method: String, params: JSONValue?)
    case response(id: RequestID?, result: JSONValue?, error: RPCError?)
    case invalid(id: RequestID?, error: RPCError)

    public static func parse(_ body: Data, maxDepth: Int = JSONParser.defaultMaxDepth) -> IncomingMessage {
        guard String(data: body, encoding: .utf8) != nil else {
            return .invalid(id: nil, error: .parseError("message body is not valid UTF-8"))
        }
        let parsed: JSONParser.Parsed
        do { parsed = try JSONParser.parse(body, maxDepth: maxDepth) } catch {
            return .invalid(id: nil, error: .parseError("message body is not valid JSON: \(error)"))
        }
        let message = classify(parsed.value).keepingSpelling(of: parsed.rawNumericID)
        if let offset = parsed.depthExceededAt {
            return .invalid(id: message.id, error: .invalidRequest(
                "message nests arrays/objects deeper than \(maxDepth) levels (at byte \(offset); see maxJSONDepth in initialize)"))
        }
        return message
    }

    /// The id the message carries, if any.
    public var id: RequestID? {
        switch self {
        case .request(let id, _, _): return id
        case .response(let id, _, _), .invalid(let id, _): return id
        case .notification: return nil
        }
    }

    /// Replaces an integral id parsed from `2.0`-style text by one that echoes that text.
    private func keepingSpelling(of rawID: String?) -> IncomingMessage {
        guard let rawID, Int64(rawID) == nil, let value = id?.json.intValue else { return self }
        let spelled = RequestID.spelled(value, text: rawID)
        switch self {
        case .request(_, let method, let params): return .request(id: spelled, method: method, params: params)
        case .response(_, let result, let error): return .response(id: spelled, result: result, error: error)
        case .invalid(_, let error): return .invalid(id: spelled, error: error)
        case .notification: return self
        }
    }

    static func classify(_ json: JSONValue) -> IncomingMessage {
        if case .array = json {
            return .invalid(id: nil, error: .invalidRequest("JSON-RPC batches are not supported: send one message per frame"))
        }
        guard let fields = json.objectValue else {
            return .invalid(id: nil, error: .invalidRequest("a JSON-RPC message must be an object, got \(json.typeName)"))
        }
        let rawID = fields["id"]
        let id = rawID.flatMap(RequestID.init)
        if let rawID, rawID != .null, id == nil {
            return .invalid(id: nil, error: .invalidRequest("'id' must be an integer or a string, got \(rawID.typeName)"))
        }
        guard fields["jsonrpc"] == .string("2.0") else {
            return .invalid(id: id, error: .invalidRequest("'jsonrpc' must be \"2.0\""))
        }
        if fields["method"] == nil, fields["result"] != nil || fields["error"] != nil {
            let error = fields["error"].flatMap { try? JSONCoding.convert($0, to: RPCError.self) }
            return .response(id: id, result: fields["result"], error: error)
        }
        guard let method = fields["method"]?.stringValue else {
            return .invalid(id: id, error: .invalidRequest("'method' must be a string"))
        }
        let params = fields["params"]
        if let params, params.objectValue == nil, !(params == .null), params.typeName != "array" {
            return .invalid(id: id, error: .invalidRequest("'params' must be an object or an array, got \(params.typeName)"))
        }
        if let id { return .request(id: id, method: method, params: params) }
        if rawID == .null { return .invalid(id: nil, error: .invalidRequest("'id' must not be null in a request")) }
        return .notification(method: method, params: params)
    }
}

/// Builds outgoing message bodies. The result is encoded straight from the handler's Encodable
/// so large payloads (embeddings, maps) are not converted through JSONValue.
public enum OutgoingMessage {
    private struct Notification<Params: Encodable>: Encodable {
        let jsonrpc = "2.0"
        let method: String
        let params: Params
    }

    private struct Request<Params: Encodable>: Encodable {
        let jsonrpc = "2.0"
        let id: RequestID
        let method: String
        let params: Params
    }

    public static func response<R: Encodable>(id: RequestID, result: R) throws -> Data {
        response(id: id, encodedResult: try JSONCoding.encode(result))
    }

    /// Splices an already-encoded result into the envelope, so a large result is encoded once.
    public static func response(id: RequestID, encodedResult: Data) -> Data {
        envelope(id: id, member: "result", encodedValue: encodedResult)
    }

    public static func error(id: RequestID?, _ error: RPCError) -> Data {
        // An RPCError always encodes (its data is a JSONValue, whose non-finite numbers become null).
        let encoded = (try? JSONCoding.encode(error)) ?? Data(#"{"code":-32603,"message":"unencodable error"}"#.utf8)
        return envelope(id: id, member: "error", encodedValue: encoded)
    }

    /// `{"jsonrpc":"2.0","id":<id as the client spelled it>,"<member>":<value>}`.
    private static func envelope(id: RequestID?, member: String, encodedValue: Data) -> Data {
        var body = Data(#"{"jsonrpc":"2.0","id":"#.utf8)
        body.append(id?.wireText ?? Data("null".utf8))
        body.append(Data(",\"\(member)\":".utf8))
        body.append(encodedValue)
        body.append(UInt8(ascii: "}"))
        return body
    }

    public static func notification<P: Encodable>(method: String, params: P) throws -> Data {
        try JSONCoding.encode(Notification(method: method, params: params))
    }

    public static func request<P: Encodable>(id: RequestID, method: String, params: P) throws -> Data {
        try JSONCoding.encode(Request(id: id, method: method, params: params))
    }
}

/// A short, human-readable description of a decoding error, naming the field path it happened at.
public func describe(_ error: Error) -> String {
    guard let decodingError = error as? DecodingError else { return String(describing: error) }
    func path(_ codingPath: [CodingKey]) -> String {
        var text = "params"
        for key in codingPath {
            if let index = key.intValue { text += "[\(index)]" } else { text += ".\(key.stringValue)" }
        }
        return text
    }
    switch decodingError {
    case .typeMismatch(let type, let context):
        return "\(path(context.codingPath)): expected \(typeDescription(type))"
    case .valueNotFound(let type, let context):
        return "\(path(context.codingPath)): expected \(typeDescription(type)), got null"
    case .keyNotFound(let key, let context):
        return "\(path(context.codingPath + [key])): required field is missing"
    case .dataCorrupted(let context):
        let detail = context.debugDescription
        return context.codingPath.isEmpty ? detail : "\(path(context.codingPath)): \(detail)"
    @unknown default:
        return String(describing: decodingError)
    }
}

private func typeDescription(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: return "a string"
    case is Bool.Type: return "a boolean"
    case is Int.Type, is Int64.Type, is Int32.Type, is UInt.Type: return "an integer"
    case is Double.Type, is Float.Type: return "a number"
    default:
        let name = String(describing: type)
        if name.hasPrefix("Array") { return "an array" }
        if name.hasPrefix("Dictionary") { return "an object" }
        return "a value of type \(name)"
    }
}
