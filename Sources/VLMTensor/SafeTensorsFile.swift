import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Errors from reading a `.safetensors` file. Every case names the file or the tensor at fault.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case invalidHeader(path: String, reason: String)
    case invalidTensor(name: String, reason: String)
    case missingTensor(name: String)
    case unsupportedDType(name: String, dtype: String)
    case shapeMismatch(name: String, expected: [Int], found: [Int])

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "cannot read safetensors file \(path): \(reason)"
        case let .invalidHeader(path, reason): return "invalid safetensors header in \(path): \(reason)"
        case let .invalidTensor(name, reason): return "invalid safetensors entry '\(name)': \(reason)"
        case let .missingTensor(name): return "tensor '\(name)' is missing from the checkpoint"
        case let .unsupportedDType(name, dtype): return "tensor '\(name)' has dtype \(dtype), expected F32, F16 or BF16"
        case let .shapeMismatch(name, expected, found): return "tensor '\(name)' has shape \(found), expected \(expected)"
        }
    }
}

/// A memory-mapped safetensors file (https://github.com/huggingface/safetensors):
/// 8-byte little-endian header length N, N bytes of JSON mapping names to
/// {dtype, shape, data_offsets: [begin, end]} (relative to the data area), then the data area.
///
/// The header is validated completely when the file is opened, before any tensor is touched:
/// bounded size, known dtypes, offsets inside the data area, byte sizes that match the shapes
/// (overflow-checked), and no two tensors sharing bytes. Floating tensors (F32, F16, BF16) are
/// converted to Float32 when read.
///
/// `@unchecked Sendable`: the mapping is read-only and immutable after `init`.
public final class SafeTensorsFile: @unchecked Sendable {
    /// Element types a header may declare, with their sizes in bytes.
    public enum DType: String, Sendable {
        case F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL
        case F8_E4M3, F8_E5M2

        public var byteSize: Int {
            switch self {
            case .F64, .I64, .U64: return 8
            case .F32, .I32, .U32: return 4
            case .F16, .BF16, .I16, .U16: return 2
            case .I8, .U8, .BOOL, .F8_E4M3, .F8_E5M2: return 1
            }
        }
    }

    /// One tensor's header entry.
    public struct Entry: Sendable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        /// Byte range inside the data area.
        public let begin: Int
        public let end: Int
    }

    /// Headers larger than this are rejected before being read (real checkpoints use well under 1 MB).
    public static let maximumHeaderBytes = 100 * 1024 * 1024

    public let path: String
    public let entries: [String: Entry]
    /// User metadata from the header's `__metadata__` object (string values only).
    public let metadata: [String: String]
    private let mapping: UnsafeRawPointer
    private let mappedBytes: Int
    private let dataStart: Int

    public init(url: URL) throws {
        path = url.path
        let (mapping, size) = try Self.map(path: path)
        self.mapping = UnsafeRawPointer(mapping)
        mappedBytes = size
        do {
            let header = try Self.readHeader(mapping: self.mapping, fileSize: size, path: path)
            dataStart = 8 + header.length
            (entries, metadata) = try Self.parseHeader(header.json, dataBytes: size - dataStart, path: path)
        } catch {
            munmap(mapping, size)
            throw error
        }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: mapping), mappedBytes) }

    /// Size of the mapped file in bytes.
    public var fileBytes: Int { mappedBytes }

    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// Reads a floating tensor as Float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let entry = entries[name] else { throw SafeTensorsError.missingTensor(name: name) }
        guard [.F32, .F16, .BF16].contains(entry.dtype) else {
            throw SafeTensorsError.unsupportedDType(name: name, dtype: entry.dtype.rawValue)
        }
        let count = entry.shape.reduce(1, *)
        let source = mapping + dataStart + entry.begin
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBytes { destination in
            switch entry.dtype {
            case .F32:
                destination.copyMemory(from: UnsafeRawBufferPointer(start: source, count: count * 4))
            case .F16:
                let out = destination.bindMemory(to: Float.self)
                for i in 0..<count {
                    out[i] = Float(Float16(bitPattern: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            case .BF16:
                // bfloat16 is the upper half of a float32.
                let out = destination.bindMemory(to: Float.self)
                for i in 0..<count {
                    out[i] = Float(bitPattern: UInt32(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
                }
            default:
                preconditionFailure("non-float dtypes are rejected above")
            }
        }
        return Tensor(shape: entry.shape, storage: values)
    }

    /// Reads a floating tensor and checks its shape.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        guard let entry = entries[name] else { throw SafeTensorsError.missingTensor(name: name) }
        guard entry.shape == shape else { throw SafeTensorsError.shapeMismatch(name: name, expected: shape, found: entry.shape) }
        return try tensor(name)
    }

    // MARK: - Opening and validation

    private static func map(path: String) throws -> (UnsafeMutableRawPointer, Int) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw SafeTensorsError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SafeTensorsError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw SafeTensorsError.unreadable(path: path, reason: "not a regular file") }
        let size = Int(info.st_size)
        guard size >= 8 else { throw SafeTensorsError.invalidHeader(path: path, reason: "file is \(size) bytes, shorter than the 8-byte header length") }
        guard let pointer = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), pointer != MAP_FAILED else {
            throw SafeTensorsError.unreadable(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        return (pointer, size)
    }

    private static func readHeader(mapping: UnsafeRawPointer, fileSize: Int, path: String) throws -> (length: Int, json: Data) {
        let declared = UInt64(littleEndian: mapping.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(maximumHeaderBytes) else {
            throw SafeTensorsError.invalidHeader(path: path, reason: "its header length field exceeds the \(maximumHeaderBytes)-byte limit (not a safetensors file?)")
        }
        let length = Int(declared)
        guard length <= fileSize - 8 else {
            throw SafeTensorsError.invalidHeader(path: path, reason: "its header length field exceeds the file size \(fileSize)")
        }
        return (length, Data(bytes: mapping + 8, count: length))
    }

    private static func parseHeader(_ json: Data, dataBytes: Int, path: String) throws -> ([String: Entry], [String: String]) {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: json) } catch {
            throw SafeTensorsError.invalidHeader(path: path, reason: "header is not valid JSON")
        }
        guard let header = object as? [String: Any] else {
            throw SafeTensorsError.invalidHeader(path: path, reason: "header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let fields = value as? [String: Any] else {
                    throw SafeTensorsError.invalidHeader(path: path, reason: "__metadata__ is not an object")
                }
                for (key, field) in fields { if let text = field as? String { metadata[key] = text } }
                continue
            }
            entries[name] = try parseEntry(name: name, value, dataBytes: dataBytes)
        }
        try checkNoOverlap(Array(entries.values))
        return (entries, metadata)
    }

    private static func parseEntry(name: String, _ value: Any, dataBytes: Int) throws -> Entry {
        func invalid(_ reason: String) -> SafeTensorsError { .invalidTensor(name: name, reason: reason) }
        guard let fields = value as? [String: Any] else { throw invalid("entry is not an object") }
        guard let dtypeName = fields["dtype"] as? String else { throw invalid("missing dtype") }
        guard let dtype = DType(rawValue: dtypeName) else { throw invalid("unknown dtype \(dtypeName)") }
        guard let shapeValues = fields["shape"] as? [Any] else { throw invalid("missing shape") }
        let shape = try shapeValues.map { value -> Int in
            guard let dimension = nonNegativeInteger(value) else { throw invalid("shape \(shapeValues) has a non-integer or negative dimension") }
            return dimension
        }
        guard let offsets = fields["data_offsets"] as? [Any], offsets.count == 2,
              let begin = nonNegativeInteger(offsets[0]), let end = nonNegativeInteger(offsets[1])
        else { throw invalid("data_offsets must be two non-negative integers") }
        guard begin <= end else { throw invalid("data_offsets begin \(begin) > end \(end)") }
        guard end <= dataBytes else { throw invalid("data_offsets end \(end) lies beyond the data area (\(dataBytes) bytes)") }
        var expected = dtype.byteSize
        for dimension in shape {
            let (product, overflow) = expected.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw invalid("shape \(shape) overflows") }
            expected = product
        }
        guard expected == end - begin else {
            throw invalid("shape \(shape) of \(dtypeName) needs \(expected) bytes, data_offsets give \(end - begin)")
        }
        return Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    private static func checkNoOverlap(_ entries: [Entry]) throws {
        let sorted = entries.filter { $0.end > $0.begin }.sorted { ($0.begin, $0.name) < ($1.begin, $1.name) }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where next.begin < previous.end {
            throw SafeTensorsError.invalidTensor(name: next.name, reason: "data overlaps tensor '\(previous.name)'")
        }
    }

    /// An exact non-negative integer from a JSON number (rejects 1.5, -3, "7").
    private static func nonNegativeInteger(_ value: Any) -> Int? {
        guard let number = value as? NSNumber else { return nil }
        let integer = number.int64Value
        guard integer >= 0, Double(integer) == number.doubleValue, integer <= Int64(Int.max) else { return nil }
        return Int(integer)
    }
}
