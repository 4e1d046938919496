import Foundation
import Testing
import VLMTensor

/// The safetensors reader on files written here byte by byte: valid files in each float dtype, and
/// hostile headers that must fail with an error naming the file or tensor.
@Suite struct SafeTensorsTests {
    /// Writes `header` (JSON text) and `data` in safetensors framing; `declaredLength` overrides the prefix.
    static func write(_ header: String, data: [UInt8], declaredLength: UInt64? = nil) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString).safetensors")
        let headerBytes = Array(header.utf8)
        var bytes = withUnsafeBytes(of: (declaredLength ?? UInt64(headerBytes.count)).littleEndian) { Array($0) }
        bytes += headerBytes + data
        try Data(bytes).write(to: url)
        return url
    }

    static func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    @Test func readsF32F16AndBF16AsFloat32() throws {
        let f32 = Self.bytes([Float(1.5), -2, 0.25, 3])
        let f16 = Self.bytes([UInt16(0x3C00), 0xC000, 0x3800])  // 1, -2, 0.5
        let bf16 = Self.bytes([UInt16(0x3F80), 0xC040])  // 1, -3
        let header = """
        {"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},
         "b":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},"c":{"dtype":"BF16","shape":[2],"data_offsets":[22,26]},
         "s":{"dtype":"F32","shape":[],"data_offsets":[26,30]},"i":{"dtype":"I64","shape":[],"data_offsets":[30,38]}}
        """
        let url = try Self.write(header, data: f32 + f16 + bf16 + Self.bytes([Float(7)]) + Self.bytes([Int64(5)]))
        let file = try SafeTensorsFile(url: url)
        #expect(try file.tensor("a", shape: [2, 2]).storage == [1.5, -2, 0.25, 3])
        #expect(try file.tensor("b").storage == [1, -2, 0.5])
        #expect(try file.tensor("c").storage == [1, -3])
        #expect(try file.tensor("s", shape: []).storage == [7])
        #expect(file.metadata["format"] == "pt")
        #expect(throws: SafeTensorsError.unsupportedDType(name: "i", dtype: "I64")) { try file.tensor("i") }
        #expect(throws: SafeTensorsError.missingTensor(name: "zzz")) { try file.tensor("zzz") }
        #expect(throws: SafeTensorsError.shapeMismatch(name: "a", expected: [4], found: [2, 2])) { try file.tensor("a", shape: [4]) }
    }

    /// Each hostile case and a fragment of the message it must produce.
    static let hostile: [(header: String, data: Int, declared: UInt64?, message: String)] = [
        ("{}", 0, 200_000_000, "exceeds the 104857600-byte limit"),
        ("{}", 0, 5000, "exceeds the file size"),
        ("{not json", 0, nil, "not valid JSON"),
        ("[1,2]", 0, nil, "not a JSON object"),
        (#"{"t":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}"#, 4, nil, "'t': unknown dtype Q4"),
        (#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#, 8, nil, "'t': data_offsets end 16 lies beyond"),
        (#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, 8, nil, "'t': data_offsets begin 8 > end 4"),
        (#"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8, nil, "'t': shape [3] of F32 needs 12 bytes"),
        (#"{"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, 8, nil, "'t': shape"),
        (#"{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, 4, nil, "'t': shape"),
        (#"{"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, 4, nil, "'t': shape"),
        (#"{"t":{"dtype":"F32","shape":[1e300],"data_offsets":[0,4]}}"#, 4, nil, "'t': shape"),
        (#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,1e300]}}"#, 4, nil, "'t': data_offsets"),
        (#"{"t":{"dtype":"F32","shape":[1]}}"#, 4, nil, "'t': data_offsets must be"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, 12, nil, "overlaps"),
    ]

    @Test(arguments: 0..<hostile.count) func rejectsHostileHeader(index: Int) throws {
        let item = Self.hostile[index]
        let url = try Self.write(item.header, data: [UInt8](repeating: 0, count: item.data), declaredLength: item.declared)
        do {
            _ = try SafeTensorsFile(url: url)
            Issue.record("accepted hostile header \(item.header)")
        } catch let error as SafeTensorsError {
            #expect(error.description.contains(item.message), "\(error.description)")
        }
    }

    @Test func rejectsShortAndMissingFiles() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("st-short-\(UUID().uuidString)")
        try Data([1, 2, 3]).write(to: url)
        #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(url: url) }
        #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(url: URL(fileURLWithPath: "/nonexistent/x.safetensors")) }
    }
}
