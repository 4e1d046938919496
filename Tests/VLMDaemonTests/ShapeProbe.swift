import VLMWire

/// The JSON shape a Decodable type asks for, found by decoding it from a decoder that answers every
/// question and writes down what was asked: each key, whether it was read with `decodeIfPresent`
/// (optional) or `decode` (required), and the shape of each value, walking nested types. Synthesised
/// Codable reads and writes the same keys, so this is also the shape of what the type encodes.
final class ShapeNode {
    enum Kind: String { case unknown, null, boolean, integer, number, string, any, array, object }
    var kind = Kind.unknown
    var fields: [String: (node: ShapeNode, optional: Bool)] = [:]
    var element: ShapeNode?

    static func of<T: Decodable>(_ type: T.Type) throws -> ShapeNode {
        let node = ShapeNode()
        _ = try probe(type, into: node)
        return node
    }

    /// JSON values and request ids take any shape (and try several when decoded): they stop the walk.
    static func probe<T: Decodable>(_ type: T.Type, into node: ShapeNode) throws -> T {
        if let value = JSONValue.null as? T { node.kind = .any; return value }
        if let value = RequestID.int(0) as? T { node.kind = .any; return value }
        return try T(from: ShapeProbe(node: node, codingPath: []))
    }
}

struct ProbeLimit: Error { let what: String }

struct ShapeProbe: Decoder {
    let node: ShapeNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        node.kind = .object
        return KeyedDecodingContainer(KeyedProbe<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        node.kind = .array
        let element = ShapeNode()
        node.element = element
        return UnkeyedProbe(element: element, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleValueProbe(node: node, codingPath: codingPath) }
}

struct KeyedProbe<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let node: ShapeNode
    let codingPath: [any CodingKey]
    var allKeys: [Key] { [] }

    func contains(_ key: Key) -> Bool { true }
    func decodeNil(forKey key: Key) throws -> Bool { false }

    private func field<T: Decodable>(_ type: T.Type, _ key: Key, optional: Bool) throws -> T {
        let child = ShapeNode()
        node.fields[key.stringValue] = (child, optional)
        return try ShapeNode.probe(type, into: child)
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try field(type, key, optional: false) }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? { try field(type, key, optional: true) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try field(type, key, optional: true) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try field(type, key, optional: true) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try field(type, key, optional: true) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try field(type, key, optional: true) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try field(type, key, optional: true) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try field(type, key, optional: true) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try field(type, key, optional: true) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try field(type, key, optional: true) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try field(type, key, optional: true) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try field(type, key, optional: true) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try field(type, key, optional: true) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try field(type, key, optional: true) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try field(type, key, optional: true) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try field(type, key, optional: false) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try field(type, key, optional: true) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        throw ProbeLimit(what: "nested keyed containers")
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { throw ProbeLimit(what: "nested unkeyed containers") }
    func superDecoder() throws -> any Decoder { throw ProbeLimit(what: "super decoders") }
    func superDecoder(forKey key: Key) throws -> any Decoder { throw ProbeLimit(what: "super decoders") }
}

/// An array of exactly one element: enough to learn the element's shape.
struct UnkeyedProbe: UnkeyedDecodingContainer {
    let element: ShapeNode
    let codingPath: [any CodingKey]
    var count: Int? { 1 }
    var isAtEnd: Bool { currentIndex > 0 }
    var currentIndex = 0

    init(element: ShapeNode, codingPath: [any CodingKey]) { self.element = element; self.codingPath = codingPath }

    mutating func element<T: Decodable>(_ type: T.Type) throws -> T {
        currentIndex += 1
        return try ShapeNode.probe(type, into: element)
    }

    mutating func decodeNil() throws -> Bool { false }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try element(type) }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try element(type) }
    mutating func decode(_ type: String.Type) throws -> String { try element(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try element(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try element(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try element(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try element(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try element(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try element(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try element(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try element(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try element(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try element(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try element(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try element(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        throw ProbeLimit(what: "nested keyed containers")
    }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { throw ProbeLimit(what: "nested unkeyed containers") }
    mutating func superDecoder() throws -> any Decoder { throw ProbeLimit(what: "super decoders") }
}

struct SingleValueProbe: SingleValueDecodingContainer {
    let node: ShapeNode
    let codingPath: [any CodingKey]

    /// Only a type that is always null asks this first and stops there (NullResult).
    func decodeNil() -> Bool { node.kind = .null; return true }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try ShapeNode.probe(type, into: node) }
    func decode(_ type: Bool.Type) throws -> Bool { node.kind = .boolean; return false }
    func decode(_ type: String.Type) throws -> String { node.kind = .string; return "" }
    func decode(_ type: Double.Type) throws -> Double { node.kind = .number; return 0 }
    func decode(_ type: Float.Type) throws -> Float { node.kind = .number; return 0 }
    func decode(_ type: Int.Type) throws -> Int { node.kind = .integer; return 0 }
    func decode(_ type: Int8.Type) throws -> Int8 { node.kind = .integer; return 0 }
    func decode(_ type: Int16.Type) throws -> Int16 { node.kind = .integer; return 0 }
    func decode(_ type: Int32.Type) throws -> Int32 { node.kind = .integer; return 0 }
    func decode(_ type: Int64.Type) throws -> Int64 { node.kind = .integer; return 0 }
    func decode(_ type: UInt.Type) throws -> UInt { node.kind = .integer; return 0 }
    func decode(_ type: UInt8.Type) throws -> UInt8 { node.kind = .integer; return 0 }
    func decode(_ type: UInt16.Type) throws -> UInt16 { node.kind = .integer; return 0 }
    func decode(_ type: UInt32.Type) throws -> UInt32 { node.kind = .integer; return 0 }
    func decode(_ type: UInt64.Type) throws -> UInt64 { node.kind = .integer; return 0 }
}
