import Foundation
import Testing
@testable import VLMImage

/// The one reader of labelled datasets (zero-shot evaluation and prompt learning both use it): labels
/// are checked against the class names before any image is read; images come back as the format's
/// own reader gives them.
@Suite struct LabelledDatasetTests {
    static let images = Fixtures.sharedImages

    /// A list file in a fresh folder; removed with the folder by the caller.
    static func list(_ lines: [String]) throws -> (folder: URL, path: String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("labelled-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("list.txt")
        try (lines.joined(separator: "\n") + "\n").write(to: path, atomically: true, encoding: .utf8)
        return (folder, path.path)
    }

    static func reason(_ body: () throws -> Void) -> String? {
        do { try body() } catch let error as ImageError {
            if case .invalidDataset(_, let reason) = error { return reason }
            return "not invalidDataset: \(error)"
        } catch { return "\(error)" }
        return nil
    }

    @Test func cifarRecordsAndLabelsAsTheCIFARReaderGivesThem() throws {
        let path = Fixtures.path("cifar100_small.bin")
        let names = (0..<100).map { "class \($0)" }
        let fine = try LabelledDataset(path: path, format: .cifar100, classNames: names, pixelBudget: 1 << 20)
        let raw = try CIFARDataset(path: path, layout: .cifar100(useFineLabel: true))
        #expect(fine.count == 3 && fine.classNames == names)
        #expect(fine.labels == (try (0..<3).map { try raw.label(at: $0) }))
        #expect(try fine.image(at: 2) == raw.record(at: 2).image)
        let coarse = try LabelledDataset(path: path, format: .cifar100Coarse, classNames: Array(names.prefix(20)), limit: 2, pixelBudget: 1 << 20)
        let rawCoarse = try CIFARDataset(path: path, layout: .cifar100(useFineLabel: false))
        #expect(coarse.labels == (try (0..<2).map { try rawCoarse.label(at: $0) }))
        #expect(throws: ImageError.self) { try coarse.image(at: 2) }
    }

    @Test func aCIFARLabelBeyondTheClassNamesIsAnInvalidDataset() throws {
        let path = Fixtures.path("cifar100_small.bin")
        let raw = try CIFARDataset(path: path, layout: .cifar100(useFineLabel: true))
        let labels = try raw.labels()
        let reason = Self.reason {
            _ = try LabelledDataset(path: path, format: .cifar100, classNames: ["only"], pixelBudget: 1 << 20)
        }
        let firstBeyond = labels.firstIndex { $0 >= 1 }!
        #expect(reason == "record \(firstBeyond) has label \(labels[firstBeyond]) but only 1 class names were given")
        #expect(throws: ImageError.invalidArgument("a cifar10 dataset needs class names")) {
            try LabelledDataset(path: path, format: .cifar10, classNames: nil, pixelBudget: 1 << 20)
        }
    }

    @Test func aListNamesItsClassesInOrderOfFirstAppearanceUnlessGivenThem() throws {
        let (folder, path) = try Self.list(["\(Self.images.path)/coins.png\tcoin", "# a comment", "\(Self.images.path)/chelsea.png cat",
                                            "\(Self.images.path)/logo.png\tcoin"])
        defer { try? FileManager.default.removeItem(at: folder) }
        let own = try LabelledDataset(path: path, format: .list, classNames: nil, pixelBudget: 1 << 24)
        #expect(own.classNames == ["coin", "cat"] && own.labels == [0, 1, 0])
        let given = try LabelledDataset(path: path, format: .list, classNames: ["dog", "cat", "coin"], limit: 2, pixelBudget: 1 << 24)
        #expect(given.classNames == ["dog", "cat", "coin"] && given.labels == [2, 1])
        #expect(try given.image(at: 1) == PNGDecoder().decode(contentsOf: Self.images.appendingPathComponent("chelsea.png").path))
        // Images are decoded under the budget given.
        let small = try LabelledDataset(path: path, format: .list, classNames: nil, pixelBudget: 100)
        #expect(throws: ImageError.self) { try small.image(at: 0) }
    }

    @Test func badListsAreRefusedWholeBeforeAnyImageIsRead() throws {
        let (folder, path) = try Self.list(["\(Self.images.path)/coins.png\tcoin", "\(Self.images.path)/gone.png\tcoin",
                                            "\(Self.images.path)/chelsea.png\tcat"])
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(Self.reason { _ = try LabelledDataset(path: path, format: .list, classNames: nil, pixelBudget: 1 << 24) }
                == "line 2: image \(Self.images.path)/gone.png does not exist or cannot be read")
        // A limit that stops before the missing image reads only what it takes.
        #expect(try LabelledDataset(path: path, format: .list, classNames: nil, limit: 1, pixelBudget: 1 << 24).count == 1)
        #expect(Self.reason { _ = try LabelledDataset(path: path, format: .list, classNames: ["coin"], pixelBudget: 1 << 24) }
                == "line 3 has label 'cat', not one of the class names")
        let (emptyFolder, empty) = try Self.list(["# nothing"])
        defer { try? FileManager.default.removeItem(at: emptyFolder) }
        #expect(Self.reason { _ = try LabelledDataset(path: empty, format: .list, classNames: nil, pixelBudget: 1 << 24) }
                == "lists no labelled images")
    }

    @Test func formatsAreNamedAsOnTheWire() {
        #expect(LabelledDataset.Format.allCases.map(\.rawValue) == ["cifar10", "cifar100", "cifar100-coarse", "list"])
        #expect(LabelledDataset.Format.allCases.filter(\.needsClassNames) == [.cifar10, .cifar100, .cifar100Coarse])
    }
}
