import Foundation
import Testing
import VLMImage

/// SafeFileWriter: the one writer of heatmaps and learned prompts.
@Suite struct SafeFileWriterTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("safe-writer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
    }

    func entries() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() }

    @Test func writesContentAndLeavesNoTemporaryFile() throws {
        let target = directory.appendingPathComponent("a.bin")
        try SafeFileWriter.write(Data([1, 2, 3]), to: target)
        try SafeFileWriter.write(Data([4, 5]), to: target)
        #expect(try Data(contentsOf: target) == Data([4, 5]))
        #expect(try entries() == ["a.bin"])
    }

    @Test func replacedFileKeepsItsPermissions() throws {
        let target = directory.appendingPathComponent("secret.bin")
        FileManager.default.createFile(atPath: target.path, contents: Data([0]), attributes: [.posixPermissions: 0o600])
        try SafeFileWriter.write(Data([9]), to: target)
        let mode = try FileManager.default.attributesOfItem(atPath: target.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try Data(contentsOf: target) == Data([9]))
    }

    @Test func neverWritesThroughOrReplacesALink() throws {
        let outside = directory.appendingPathComponent("outside.txt")
        try Data("keep me".utf8).write(to: outside)
        let link = directory.appendingPathComponent("step-1.png")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: outside)
        #expect(throws: SafeFileWriter.Failure.self) { try SafeFileWriter.check(link) }
        #expect(throws: SafeFileWriter.Failure.self) { try SafeFileWriter.write(Data([1]), to: link) }
        #expect(try String(contentsOf: outside, encoding: .utf8) == "keep me")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link.path) == outside.path)
        #expect(try entries() == ["outside.txt", "step-1.png"])
    }

    @Test func missingDirectoryIsNotCreated() {
        let target = directory.appendingPathComponent("no/such/dir/file.png")
        #expect(throws: SafeFileWriter.Failure.self) { try SafeFileWriter.write(Data([1]), to: target) }
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("no").path))
    }

    @Test func overlongNameAndDirectoryTargetsAreRefusedByTheCheck() throws {
        #expect(throws: SafeFileWriter.Failure.self) {
            try SafeFileWriter.check(directory.appendingPathComponent(String(repeating: "n", count: 250)))
        }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("sub"), withIntermediateDirectories: false)
        #expect(throws: SafeFileWriter.Failure.self) { try SafeFileWriter.check(directory.appendingPathComponent("sub")) }
        try SafeFileWriter.check(directory.appendingPathComponent("fine.png"))
        #expect(try entries() == ["sub"])  // the check's probe is gone
    }
}
