import Foundation

/// Any JSON value, for the parts of a message whose shape is not known in advance
/// (request ids, `params` before a handler decodes them, error `data`, echo payloads).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        if case .object(let fields) = self { return fields[key] }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }
    public var doubleValue: Double? {
        switch self {
        case .double(let d): return d
        case .int(let i): return Double(i)
        default: return nil
        }
    }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var intValue: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: return Int64(d)
        default: return nil
        }
    }

    /// The JSON type name, for error messages that say what was found instead of what was expected.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int, .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

extension JSONValue: Codable {
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let b = try? container.decode(Bool.self) { self = .bool(b) }
        else if let i = try? container.decode(Int64.self) { self = .int(i) }
        else if let d = try? container.decode(Double.self) { self = .double(d) }
        else if let s = try? container.decode(String.self) { self = .string(s) }
        else if let a = try? container.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .int(let i): try container.encode(i)
        case .double(let d): if d.isFinite { try container.encode(d) } else { try container.encodeNil() }
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object(let o): try container.encode(o)
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}

/// One shared coder pair: JSONEncoder/JSONDecoder are expensive to create on every message.
public enum JSONCoding {
    /// Encodes `value`; non-finite floats anywhere in it become `null`, as the protocol promises
    /// (Foundation's encoder refuses them, which used to turn a model's NaN into an internal error).
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        do { return try encoder(markingNonFinite: false).encode(value) } catch EncodingError.invalidValue {
            let marked = try encoder(markingNonFinite: true).encode(value)
            return replacing(Data(("\"" + nonFiniteMarker + "\"").utf8), with: Data("null".utf8), in: marked)
        }
    }

    /// Stands in for a non-finite number during encoding; no real string is spelled this way in
    /// practice (it starts with a noncharacter), and only the quoted whole is replaced.
    static let nonFiniteMarker = "\u{FFFF}vlmd:non-finite\u{FFFF}"

    private static func encoder(markingNonFinite: Bool) -> JSONEncoder {
        let encoder = JSONEncoder()
        // Sorted keys: stable output for people reading logs and for diffing.
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        if markingNonFinite {
            encoder.nonConformingFloatEncodingStrategy = .convertToString(
                positiveInfinity: nonFiniteMarker, negativeInfinity: nonFiniteMarker, nan: nonFiniteMarker)
        }
        return encoder
    }

    private static func replacing(_ pattern: Data, with replacement: Data, in data: Data) -> Data {
        var out = Data()
        out.reserveCapacity(data.count)
        var rest = data[...]
        while let range = rest.range(of: pattern) {
            out.append(rest[rest.startIndex..<range.lowerBound])
            out.append(replacement)
            rest = rest[range.upperBound...]
        }
        out.append(rest)
        return out
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try JSONDecoder().decode(type, from: data)
    }

    /// Converts between a decoded `JSONValue` and a typed Decodable (params arrive as JSONValue).
    public static func convert<T: Decodable>(_ value: JSONValue, to type: T.Type) throws -> T {
        try decode(type, from: try encode(value))
    }

    public static func value<T: Encodable>(of encodable: T) throws -> JSONValue {
        try decode(JSONValue.self, from: try encode(encodable))
    }
}
