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
/// The file is copied into memory when opened (FileBytes), not mapped: see FileBytes for why.
///
/// `@unchecked Sendable`: the memory is read-only and immutable after `init`.
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
        let file: FileBytes
        do { file = try FileBytes(path: path) } catch { throw SafeTensorsError.unreadable(path: path, reason: error.reason) }
        guard file.count >= 8 else {
            throw SafeTensorsError.invalidHeader(path: path, reason: "file is \(file.count) bytes, shorter than the 8-byte header length")
        }
        return file.release()
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

/// A whole file copied into page-aligned anonymous memory with pread(2), for model files.
///
/// Why not mmap: a mapped file that is truncated on disk while in use (a model re-downloaded over
/// the loaded one, `truncate`, a sync tool rewriting it in place) raises SIGBUS on the next access
/// past the new end, killing the daemon in the middle of an unrelated request, and Swift has no safe
/// way to catch it. MAP_PRIVATE does not help (untouched private pages still read through to the
/// file), and checking the size before each request leaves a window during the request. A file
/// replaced by rename would be safe with mmap; one truncated in place is not. So the bytes are read
/// once: afterwards nothing on disk can reach them. The cost is reading the file at load (from the
/// page cache, well under a second for the models vlmd serves) and not sharing those pages with it.
///
/// `@unchecked Sendable`: the memory is written once in `init` and read-only afterwards.
public final class FileBytes: @unchecked Sendable {
    public struct Failure: Error, Sendable {
        public let reason: String
    }

    public let bytes: UnsafeRawPointer
    public let count: Int
    private var owned = true

    public init(path: String) throws(Failure) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Failure(reason: String(cString: strerror(errno))) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw Failure(reason: "not a regular file") }
        count = Int(info.st_size)
        guard count > 0 else { bytes = UnsafeRawPointer(bitPattern: 1)!; owned = false; return }
        guard let address = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), address != MAP_FAILED else {
            throw Failure(reason: "cannot allocate \(count) bytes: \(String(cString: strerror(errno)))")
        }
        // Transparent huge pages where the kernel offers them on request: matrix-vector products stream
        // the whole weight file per token, and 2 MB pages spare them most TLB misses.
        _ = madvise(address, count, MADV_HUGEPAGE)
        var done = 0
        while done < count {
            let n = pread(fd, address + done, count - done, off_t(done))
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                munmap(address, count)
                throw Failure(reason: n == 0 ? "file shrank while being read" : String(cString: strerror(errno)))
            }
            done += n
        }
        mprotect(address, count, PROT_READ)
        bytes = UnsafeRawPointer(address)
    }

    /// Hands the memory to a caller that unmaps it (munmap(pointer, count)) itself.
    func release() -> (UnsafeMutableRawPointer, Int) {
        owned = false
        return (UnsafeMutableRawPointer(mutating: bytes), count)
    }

    deinit { if owned { munmap(UnsafeMutableRawPointer(mutating: bytes), count) } }
}
