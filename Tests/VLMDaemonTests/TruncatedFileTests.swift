import Foundation
import Testing
import VLMImage

/// A dataset file truncated on disk while open must give an error, not SIGBUS (it is read with
/// pread, not mapped).
@Suite struct TruncatedFileTests {
    @Test func cifarRecordsPastATruncationAreAnErrorNotACrash() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cifar-\(UUID().uuidString).bin").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let recordSize = 1 + CIFARDataset.pixelBytes
        var bytes = [UInt8](repeating: 0, count: 8 * recordSize)
        for record in 0..<8 { bytes[record * recordSize] = UInt8(record) }
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let dataset = try CIFARDataset(path: path)
        #expect(try dataset.labels() == Array(0..<8))
        #expect(truncate(path, off_t(3 * recordSize)) == 0)
        #expect(try dataset.record(at: 2).label == 2)
        #expect(throws: ImageError.self) { try dataset.record(at: 6) }
        #expect(throws: ImageError.self) { try dataset.labels() }
    }

    @Test func missingDatasetFileIsAnUnreadableDataset() {
        #expect(throws: ImageError.invalidDataset(input: "/no/such.bin", reason: "cannot open: No such file or directory")) {
            try CIFARDataset(path: "/no/such.bin")
        }
    }
}
