// GGUF metadata values and typed accessors.

/// Not `indirect`: arrays already live on the heap, and boxing every case cost a heap object per element
/// (a 262k-token vocabulary's tokens, scores and types: ~16 MB of resident memory more than inline values).
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool)
    case string(String)
    case array([GGUFValue])

    /// Any integer value (or a bool) as Int; nil for non-integers and values beyond Int.
    public var intValue: Int? {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): Int(exactly: v)
        case let .int64(v): Int(v)
        case let .bool(v): v ? 1 : 0
        default: nil
        }
    }

    /// Any numeric value as Double.
    public var doubleValue: Double? {
        switch self {
        case let .float32(v): Double(v)
        case let .float64(v): v
        default: intValue.map(Double.init)
        }
    }

    public var boolValue: Bool? {
        if case let .bool(v) = self { return v }
        return intValue.map { $0 != 0 }
    }

    public var stringValue: String? {
        if case let .string(v) = self { return v }
        return nil
    }

    public var arrayValue: [GGUFValue]? {
        if case let .array(v) = self { return v }
        return nil
    }
}

/// GGUF's value-type codes (gguf.h `gguf_type`).
enum GGUFValueType: UInt32 {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// The fewest bytes one value of this type occupies in the file (bounds array counts before allocating).
    var minimumBytes: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8  // a string is at least its 8-byte length
        case .array: 12  // element type + count
        }
    }
}
