import Foundation
import Testing
@testable import VLMImage

/// CIFAR records cross-checked with numpy (cifar.json, written by the fixture script).
@Suite struct DatasetTests {
    static let testBatch = Fixtures.shared.appendingPathComponent("data/cifar-10/test_batch.bin").path

    @Test func cifar10RecordsMatchNumpy() throws {
        let json = try Fixtures.json("cifar.json")["test_batch"] as! [String: Any]
        let dataset = try CIFARDataset(path: Self.testBatch)
        #expect(dataset.count == json["count"] as! Int)
        for (index, value) in json["records"] as! [String: [String: Any]] {
            let (image, label) = try dataset.record(at: Int(index)!)
            #expect(label == value["label"] as! Int)
            #expect(SHA256.hex(image.pixels) == value["rgb_sha256"] as! String, "record \(index)")
            for (key, x, y) in [("pixel_0_0", 0, 0), ("pixel_31_5", 5, 31), ("pixel_7_20", 20, 7)] {
                let p = image[x, y]
                #expect([Int(p.0), Int(p.1), Int(p.2)] == value[key] as! [Int], "record \(index) \(key)")
            }
        }
        // Record order is class-interleaved (README): record k has label k mod 10.
        #expect(try (0..<20).map { try dataset.label(at: $0) } == (0..<20).map { $0 % 10 })
    }

    @Test func cifar100CoarseAndFineLabels() throws {
        let expected = try Fixtures.json("cifar.json")["cifar100_small"] as! [[String: Any]]
        let coarse = try CIFARDataset(path: Fixtures.path("cifar100_small.bin"), layout: .cifar100(useFineLabel: false))
        let fine = try CIFARDataset(path: Fixtures.path("cifar100_small.bin"), layout: .cifar100(useFineLabel: true))
        #expect(coarse.count == 3 && fine.count == 3)
        for (i, e) in expected.enumerated() {
            #expect(try coarse.label(at: i) == e["coarse"] as! Int)
            let (image, label) = try fine.record(at: i)
            #expect(label == e["fine"] as! Int)
            #expect(SHA256.hex(image.pixels) == e["rgb_sha256"] as! String)
        }
        // The same bytes read as CIFAR-10 do not divide into 3073-byte records.
        #expect(throws: ImageError.self) { try CIFARDataset(path: Fixtures.path("cifar100_small.bin")) }
    }

    @Test func badFilesAndIndicesAreRejected() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vlmimage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let odd = dir.appendingPathComponent("odd.bin")
        try Data(repeating: 1, count: 3073 * 2 + 100).write(to: odd)
        do {
            _ = try CIFARDataset(path: odd.path)
            Issue.record("misaligned file opened")
        } catch {
            #expect(error.description.contains("odd.bin") && error.description.contains("multiple"))
        }
        let empty = dir.appendingPathComponent("empty.bin")
        try Data().write(to: empty)
        #expect(throws: ImageError.self) { try CIFARDataset(path: empty.path) }
        #expect(throws: ImageError.self) { try CIFARDataset(path: dir.appendingPathComponent("missing.bin").path) }
        let dataset = try CIFARDataset(path: Self.testBatch)
        #expect(throws: ImageError.self) { try dataset.record(at: dataset.count) }
        #expect(throws: ImageError.self) { try dataset.label(at: -1) }
    }

    @Test func labelNamesFile() throws {
        let names = try CIFARDataset.labelNames(contentsOf: Fixtures.shared.appendingPathComponent("data/cifar-10/batches.meta.txt").path)
        #expect(names.count == 10)
        #expect(names.first == "airplane" && names.last == "truck")
    }

    @Test func labelledImageList() throws {
        let text = "# comment\nimages/cat 1.png\tcat\n\n/abs/dog.png dog\nbird.png   bird\r\n"
        let list = try LabelledImageList(parsing: text, baseDirectory: "/data/set", input: "list.txt")
        #expect(list.entries == [
            .init(path: "/data/set/images/cat 1.png", label: "cat"),
            .init(path: "/abs/dog.png", label: "dog"),
            .init(path: "/data/set/bird.png", label: "bird"),
        ])
        #expect(list.labels == ["cat", "dog", "bird"])
        do {
            _ = try LabelledImageList(parsing: "a.png cat\nnolabel\n", baseDirectory: "/", input: "list.txt")
            Issue.record("line without label accepted")
        } catch {
            #expect(error.description.contains("list.txt") && error.description.contains("line 2"))
        }
    }

    @Test func labelledImageListFileResolvesAgainstItsFolder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vlmimage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "x.png\t3\n".write(to: dir.appendingPathComponent("list.txt"), atomically: true, encoding: .utf8)
        let list = try LabelledImageList(contentsOf: dir.appendingPathComponent("list.txt").path)
        #expect(list.entries == [.init(path: dir.appendingPathComponent("x.png").path, label: "3")])
    }
}
