// GGUF reader (versions 2 and 3, little-endian): header, metadata, tensor table, memory-mapped data.
//
// File layout (ggml/docs/gguf.md):
//   "GGUF" magic, u32 version, u64 tensor count, u64 metadata count
//   metadata: { string key, u32 value type, value }*        (string = u64 length + UTF-8 bytes)
//   tensor infos: { string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset }*
//   padding to `general.alignment` (default 32), then the tensor data; offsets are relative to it.
// Every count and length is checked against the bytes left in the file before anything is allocated.
import Foundation
import VLMTensor

/// One tensor of the file. `dimensions[0]` is the row length (ggml's ne0, the fastest-varying index).
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    public let dimensions: [Int]
    public let format: WeightFormat
    /// Offset of the first byte from the start of the file.
    public let fileOffset: Int
    public let byteCount: Int

    public var elementCount: Int { dimensions.reduce(1, *) }
    public var rowLength: Int { dimensions[0] }
    public var rowCount: Int { elementCount / dimensions[0] }
}

/// `@unchecked Sendable`: immutable after init; tensor data is a read-only mapping it keeps alive.
public final class GGUFFile: @unchecked Sendable {
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensors: [String: GGUFTensorInfo]
    /// Tensor names in file order.
    public let tensorNames: [String]
    public let alignment: Int
    public let file: MappedFile

    static let maxDimensions = 4
    static let maxArrayNesting = 8

    public convenience init(url: URL) throws {
        try self.init(mapping: MappedFile(url: url))
    }

    public init(mapping: MappedFile) throws {
        file = mapping
        var reader = ByteReader(base: mapping.bytes, count: mapping.count, path: mapping.url.path)
        guard mapping.count >= 4, try reader.read(UInt32.self, "magic") == 0x4655_4747 else {
            throw GGUFError.notGGUF(path: mapping.url.path)
        }
        version = try reader.read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(version) }
        let tensorCount = try reader.readCount("tensor count", minimumBytesEach: 8 + 4 + 8 + 4 + 8)
        let keyCount = try reader.readCount("metadata count", minimumBytesEach: 8 + 4 + 1)

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        for _ in 0..<keyCount {
            let key = try reader.readString("metadata key")
            let type = try reader.read(UInt32.self, "type of '\(key)'")
            let value = try reader.readValue(typeCode: type, key: key, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else { throw GGUFError.duplicateKey(key) }
            keys.append(key)
        }
        self.metadata = metadata
        metadataKeys = keys

        let alignmentValue = metadata["general.alignment"]?.intValue ?? 32
        guard alignmentValue > 0, alignmentValue & (alignmentValue - 1) == 0 else {
            throw GGUFError.badAlignment(UInt64(truncatingIfNeeded: alignmentValue))
        }
        alignment = alignmentValue

        var raw: [(name: String, dims: [Int], format: WeightFormat, offset: UInt64)] = []
        for _ in 0..<tensorCount {
            let name = try reader.readString("tensor name")
            let dimensionCount = try reader.read(UInt32.self, "dimension count of '\(name)'")
            guard dimensionCount >= 1, dimensionCount <= Self.maxDimensions else {
                throw GGUFError.badTensor(name: name, reason: "has \(dimensionCount) dimensions (1...\(Self.maxDimensions) allowed)")
            }
            var dims: [Int] = []
            for _ in 0..<dimensionCount {
                let ne = try reader.read(UInt64.self, "dimensions of '\(name)'")
                guard ne >= 1, ne <= UInt64(Int.max) else {
                    throw GGUFError.badTensor(name: name, reason: "dimension \(ne) is out of range")
                }
                dims.append(Int(ne))
            }
            let typeCode = try reader.read(UInt32.self, "type of '\(name)'")
            guard let format = GGMLType.formats[typeCode] else {
                throw GGUFError.unsupportedTensorType(name: name, type: typeCode)
            }
            raw.append((name, dims, format, try reader.read(UInt64.self, "offset of '\(name)'")))
        }

        let dataStart = (reader.position + alignment - 1) / alignment * alignment
        guard dataStart <= mapping.count else { throw GGUFError.truncated(what: "tensor data", path: mapping.url.path) }
        var tensors: [String: GGUFTensorInfo] = [:]
        var names: [String] = []
        for t in raw {
            let info = try Self.validate(t, dataStart: dataStart, fileSize: mapping.count, alignment: alignment)
            guard tensors.updateValue(info, forKey: t.name) == nil else { throw GGUFError.duplicateTensor(t.name) }
            names.append(t.name)
        }
        self.tensors = tensors
        tensorNames = names
    }

    /// Checks shape, size and placement of one tensor and resolves its file offset.
    private static func validate(_ t: (name: String, dims: [Int], format: WeightFormat, offset: UInt64),
                                 dataStart: Int, fileSize: Int, alignment: Int) throws -> GGUFTensorInfo {
        var elements = 1
        for d in t.dims {
            let (product, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { throw GGUFError.badTensor(name: t.name, reason: "element count overflows") }
            elements = product
        }
        guard let rowBytes = t.format.rowBytes(columns: t.dims[0]) else {
            throw GGUFError.badTensor(name: t.name, reason: "row length \(t.dims[0]) is not a multiple of the \(t.format) block (\(t.format.blockLength))")
        }
        let (byteCount, overflow) = rowBytes.multipliedReportingOverflow(by: elements / t.dims[0])
        guard !overflow else { throw GGUFError.badTensor(name: t.name, reason: "byte size overflows") }
        guard t.offset % UInt64(alignment) == 0 else {
            throw GGUFError.badTensor(name: t.name, reason: "offset \(t.offset) is not aligned to \(alignment)")
        }
        let available = UInt64(fileSize - dataStart)
        guard t.offset <= available, UInt64(byteCount) <= available - t.offset else {
            throw GGUFError.badTensor(name: t.name, reason: "data [\(t.offset), +\(byteCount)) lies outside the file (\(available) data bytes)")
        }
        return GGUFTensorInfo(name: t.name, dimensions: t.dims, format: t.format,
                              fileOffset: dataStart + Int(t.offset), byteCount: byteCount)
    }

    // MARK: - Access

    public func tensor(_ name: String) throws -> GGUFTensorInfo {
        guard let info = tensors[name] else { throw GGUFError.missingTensor(name) }
        return info
    }

    /// A 2-D tensor as a matrix over the mapped bytes (rows = product of the outer dimensions).
    public func matrix(_ name: String) throws -> QuantizedMatrix {
        let info = try tensor(name)
        return QuantizedMatrix(format: info.format, rows: info.rowCount, columns: info.rowLength,
                               data: file.bytes + info.fileOffset)
    }

    /// A (small) tensor expanded to Float, e.g. a norm weight vector.
    public func floats(_ name: String) throws -> [Float] {
        let m = try matrix(name)
        var out = [Float](repeating: 0, count: m.rows * m.columns)
        out.withUnsafeMutableBufferPointer { buffer in
            for r in 0..<m.rows { m.dequantizeRow(r, into: buffer.baseAddress! + r * m.columns) }
        }
        return out
    }

    public func int(_ key: String) throws -> Int {
        guard let value = metadata[key] else { throw GGUFError.missingKey(key) }
        guard let int = value.intValue else { throw GGUFError.wrongKeyType(key: key, expected: "an integer") }
        return int
    }

    public func double(_ key: String) throws -> Double {
        guard let value = metadata[key] else { throw GGUFError.missingKey(key) }
        guard let double = value.doubleValue else { throw GGUFError.wrongKeyType(key: key, expected: "a number") }
        return double
    }

    public func string(_ key: String) throws -> String {
        guard let value = metadata[key] else { throw GGUFError.missingKey(key) }
        guard let string = value.stringValue else { throw GGUFError.wrongKeyType(key: key, expected: "a string") }
        return string
    }
}

/// A bounds-checked little-endian cursor over the mapped bytes.
struct ByteReader {
    let base: UnsafeRawPointer
    let count: Int
    let path: String
    var position = 0

    var remaining: Int { count - position }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        guard remaining >= MemoryLayout<T>.size else { throw GGUFError.truncated(what: what(), path: path) }
        let value = T(littleEndian: base.loadUnaligned(fromByteOffset: position, as: T.self))
        position += MemoryLayout<T>.size
        return value
    }

    /// A u64 count whose items each take at least `minimumBytesEach` bytes: bounded by what remains.
    mutating func readCount(_ what: String, minimumBytesEach: Int) throws -> Int {
        let count = try read(UInt64.self, what)
        let limit = UInt64(remaining / max(1, minimumBytesEach))
        guard count <= limit else { throw GGUFError.countTooLarge(what: what, count: count, limit: limit) }
        return Int(count)
    }

    mutating func readString(_ what: String) throws -> String {
        let length = try readCount("length of \(what)", minimumBytesEach: 1)
        let bytes = UnsafeRawBufferPointer(start: base + position, count: length)
        position += length
        guard let string = String(validating: bytes, as: UTF8.self) else { throw GGUFError.invalidUTF8(what: what) }
        return string
    }

    mutating func readValue(typeCode: UInt32, key: String, depth: Int) throws -> GGUFValue {
        guard let type = GGUFValueType(rawValue: typeCode) else { throw GGUFError.invalidValueType(key: key, type: typeCode) }
        let what = "value of '\(key)'"
        switch type {
        case .uint8: return .uint8(try read(UInt8.self, what))
        case .int8: return .int8(try read(Int8.self, what))
        case .uint16: return .uint16(try read(UInt16.self, what))
        case .int16: return .int16(try read(Int16.self, what))
        case .uint32: return .uint32(try read(UInt32.self, what))
        case .int32: return .int32(try read(Int32.self, what))
        case .uint64: return .uint64(try read(UInt64.self, what))
        case .int64: return .int64(try read(Int64.self, what))
        case .float32: return .float32(Float(bitPattern: try read(UInt32.self, what)))
        case .float64: return .float64(Double(bitPattern: try read(UInt64.self, what)))
        case .bool: return .bool(try read(UInt8.self, what) != 0)
        case .string: return .string(try readString(what))
        case .array:
            guard depth < GGUFFile.maxArrayNesting else { throw GGUFError.nestingTooDeep(key: key) }
            let elementCode = try read(UInt32.self, "element type of '\(key)'")
            guard let elementType = GGUFValueType(rawValue: elementCode) else {
                throw GGUFError.invalidValueType(key: key, type: elementCode)
            }
            let count = try readCount("array '\(key)'", minimumBytesEach: elementType.minimumBytes)
            var items: [GGUFValue] = []
            items.reserveCapacity(count)
            for _ in 0..<count { items.append(try readValue(typeCode: elementCode, key: key, depth: depth + 1)) }
            return .array(items)
        }
    }
}
