import Foundation

/// Writes F32 tensors and string metadata as a safetensors file (8-byte little-endian header
/// length, JSON header padded with spaces to a multiple of 8, then the data).
public enum SafeTensorsWriter {
    public static func write(_ tensors: [(name: String, shape: [Int], values: [Float])], metadata: [String: String], to url: URL) throws {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for tensor in tensors {
            precondition(tensor.shape.reduce(1, *) == tensor.values.count)
            header[tensor.name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + 4 * tensor.values.count]]
            offset += 4 * tensor.values.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var data = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        for tensor in tensors {
            for value in tensor.values { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        }
        try SafeFileWriter.write(data, to: url)
    }
}
