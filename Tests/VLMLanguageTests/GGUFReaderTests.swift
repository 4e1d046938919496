// The GGUF reader on files written byte by byte here: valid ones of both versions, and hostile ones.
import Foundation
import Testing
@testable import VLMLanguage
import VLMTensor

/// Writes GGUF files (little-endian) for tests.
struct GGUFBuilder {
    var version: UInt32 = 3
    var bytes: [UInt8] = []
    var tensorCountOverride: UInt64?
    var keyCountOverride: UInt64?
    var metadata: [(String, UInt32, [UInt8])] = []
    var tensors: [(name: String, dims: [UInt64], type: UInt32, offset: UInt64)] = []
    var data: [UInt8] = []
    var alignment = 32

    static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    static func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    static func string(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }

    mutating func add(_ key: String, uint32 v: UInt32) { metadata.append((key, 4, Self.u32(v))) }
    mutating func add(_ key: String, string v: String) { metadata.append((key, 8, Self.string(v))) }
    mutating func add(_ key: String, strings: [String]) {
        metadata.append((key, 9, Self.u32(8) + Self.u64(UInt64(strings.count)) + strings.flatMap(Self.string)))
    }
    mutating func addRaw(_ key: String, type: UInt32, _ value: [UInt8]) { metadata.append((key, type, value)) }

    /// Appends an F32 tensor's data (aligned) and its table entry.
    mutating func addF32(_ name: String, dims: [UInt64], values: [Float]) {
        while data.count % alignment != 0 { data.append(0) }
        tensors.append((name, dims, 0, UInt64(data.count)))
        data += values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
    }

    func build() -> [UInt8] {
        var out = Array("GGUF".utf8) + Self.u32(version)
        out += Self.u64(tensorCountOverride ?? UInt64(tensors.count)) + Self.u64(keyCountOverride ?? UInt64(metadata.count))
        for (key, type, value) in metadata { out += Self.string(key) + Self.u32(type) + value }
        for t in tensors {
            out += Self.string(t.name) + Self.u32(UInt32(t.dims.count)) + t.dims.flatMap(Self.u64) + Self.u32(t.type) + Self.u64(t.offset)
        }
        while out.count % alignment != 0 { out.append(0) }
        return out + data
    }

    /// A small valid file: a few metadata types and two F32 tensors.
    static func valid(version: UInt32 = 3) -> GGUFBuilder {
        var b = GGUFBuilder(version: version)
        b.add("general.architecture", string: "llama")
        b.add("test.count", uint32: 7)
        b.add("test.names", strings: ["a", "βγ", ""])
        b.addRaw("test.nested", type: 9, u32(9) + u64(2) + (u32(8) + u64(1) + string("x")) + (u32(8) + u64(0)))
        b.addRaw("test.flag", type: 7, [1])
        b.addRaw("test.pi", type: 12, u64(Double.pi.bitPattern))
        b.addF32("w", dims: [4, 2], values: [1, 2, 3, 4, 5, 6, 7, 8])
        b.addF32("v", dims: [3], values: [-1, 0.5, 2])
        return b
    }
}

func withTemporaryFile<R>(_ bytes: [UInt8], _ body: (URL) throws -> R) throws -> R {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-test-\(UUID().uuidString).gguf")
    try Data(bytes).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url)
}

/// The error reading `bytes` throws (nil if it loads).
func ggufError(_ bytes: [UInt8]) throws -> GGUFError? {
    try withTemporaryFile(bytes) { url in
        do { _ = try GGUFFile(url: url); return nil } catch let e as GGUFError { return e }
    }
}

@Suite struct GGUFReaderTests {
    @Test(arguments: [UInt32(2), 3]) func readsValidFile(version: UInt32) throws {
        try withTemporaryFile(GGUFBuilder.valid(version: version).build()) { url in
            let f = try GGUFFile(url: url)
            #expect(f.version == version)
            #expect(try f.string("general.architecture") == "llama")
            #expect(try f.int("test.count") == 7)
            #expect(f.metadata["test.names"] == .array([.string("a"), .string("βγ"), .string("")]))
            #expect(f.metadata["test.nested"] == .array([.array([.string("x")]), .array([])]))
            #expect(f.metadata["test.flag"] == .bool(true))
            #expect(f.metadata["test.pi"] == .float64(.pi))
            #expect(f.tensorNames == ["w", "v"])
            let w = try f.tensor("w")
            #expect(w.dimensions == [4, 2] && w.format == .f32 && w.rowCount == 2 && w.fileOffset % 32 == 0)
            #expect(try f.floats("w") == [1, 2, 3, 4, 5, 6, 7, 8])
            #expect(try f.floats("v") == [-1, 0.5, 2])
            #expect(throws: GGUFError.missingTensor("nope")) { try f.tensor("nope") }
        }
    }

    @Test func honoursDeclaredAlignment() throws {
        var b = GGUFBuilder.valid()
        b.alignment = 64
        b.add("general.alignment", uint32: 64)
        b.data = []; b.tensors = []
        b.addF32("w", dims: [2], values: [3, 4])
        b.addF32("z", dims: [1], values: [9])
        try withTemporaryFile(b.build()) { url in
            let f = try GGUFFile(url: url)
            #expect(f.alignment == 64)
            #expect(try f.floats("z") == [9])
            #expect(try f.tensor("z").fileOffset % 64 == 0)
        }
    }

    @Test func rejectsHostileHeaders() throws {
        var bytes = GGUFBuilder.valid().build()
        bytes[0] = UInt8(ascii: "X")
        #expect(try ggufError(bytes).map { if case .notGGUF = $0 { true } else { false } } == true)

        var b = GGUFBuilder.valid(); b.version = 1
        #expect(try ggufError(b.build()) == .unsupportedVersion(1))

        b = GGUFBuilder.valid(); b.tensorCountOverride = 1 << 60
        guard case .countTooLarge(let what, let count, _)? = try ggufError(b.build()) else { Issue.record("2^60 tensors accepted"); return }
        #expect(what == "tensor count" && count == 1 << 60)

        b = GGUFBuilder.valid(); b.keyCountOverride = UInt64.max
        guard case .countTooLarge? = try ggufError(b.build()) else { Issue.record("2^64-1 keys accepted"); return }

        b = GGUFBuilder(); b.addRaw("huge.string", type: 8, GGUFBuilder.u64(1 << 40))
        guard case .countTooLarge(let w2, _, _)? = try ggufError(b.build()) else { Issue.record("2^40-byte string accepted"); return }
        #expect(w2.contains("huge.string"))

        b = GGUFBuilder(); b.addRaw("huge.array", type: 9, GGUFBuilder.u32(6) + GGUFBuilder.u64(1 << 50))
        guard case .countTooLarge(let w3, _, _)? = try ggufError(b.build()) else { Issue.record("2^50-element array accepted"); return }
        #expect(w3.contains("huge.array"))

        b = GGUFBuilder(); b.addRaw("bad.type", type: 99, [])
        #expect(try ggufError(b.build()) == .invalidValueType(key: "bad.type", type: 99))

        // Arrays nested deeper than any real file, as a stack-exhaustion attempt.
        var nested = GGUFBuilder.u32(8) + GGUFBuilder.u64(0)
        for _ in 0..<40 { nested = GGUFBuilder.u32(9) + GGUFBuilder.u64(1) + nested }
        b = GGUFBuilder(); b.addRaw("deep", type: 9, nested)
        #expect(try ggufError(b.build()) == .nestingTooDeep(key: "deep"))

        b = GGUFBuilder(); b.add("general.alignment", uint32: 48)
        #expect(try ggufError(b.build()) == .badAlignment(48))
    }

    @Test func rejectsBadTensors() throws {
        func tensorError(_ edit: (inout GGUFBuilder) -> Void) throws -> GGUFError? {
            var b = GGUFBuilder.valid(); edit(&b); return try ggufError(b.build())
        }
        func names(_ e: GGUFError?, _ tensor: String) -> Bool {
            switch e {
            case .badTensor(let name, _)?, .unsupportedTensorType(let name, _)?: name == tensor
            default: false
            }
        }
        #expect(names(try tensorError { $0.tensors[0].offset = 8 }, "w"), "misaligned offset")
        #expect(names(try tensorError { $0.tensors[1].offset = 1 << 20 }, "v"), "offset past the end")
        #expect(names(try tensorError { $0.tensors[1].dims = [1 << 40] }, "v"), "data past the end")
        #expect(names(try tensorError { $0.tensors[0].dims = [1 << 32, 1 << 32, 1 << 32] }, "w"), "element count overflow")
        #expect(names(try tensorError { $0.tensors[0].dims = [] }, "w"), "no dimensions")
        #expect(names(try tensorError { $0.tensors[0].dims = [0] }, "w"), "zero dimension")
        #expect(names(try tensorError { $0.tensors[0].type = 77 }, "w"), "unknown type")
        #expect(names(try tensorError { $0.tensors[0].type = 8; $0.tensors[0].dims = [33] }, "w"), "row not whole q8_0 blocks")
        #expect(try tensorError { $0.tensors[1].name = "w" } == .duplicateTensor("w"))
    }

    @Test func rejectsEveryTruncation() throws {
        let full = GGUFBuilder.valid().build()
        // Every proper prefix that cuts into the header, metadata or tensor table must throw, not crash.
        let headerEnd = full.count - 48
        for length in stride(from: 0, to: headerEnd, by: 1) {
            #expect(try ggufError(Array(full.prefix(length))) != nil, "prefix of \(length) bytes loaded")
        }
        // Cutting into the tensor data is caught by the tensor bounds check.
        guard case .badTensor? = try ggufError(Array(full.prefix(full.count - 4))) else { Issue.record("truncated data accepted"); return }
    }
}
