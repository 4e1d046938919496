import Foundation

/// A dataset in CIFAR's binary format: fixed-size records of label byte(s) followed by a 32x32 image
/// stored planar (1024 R bytes, 1024 G, 1024 B, each row-major).
///
/// CIFAR-10 records have one label byte; CIFAR-100 records have two (coarse, then fine). Opening
/// costs nothing and records are read on demand with pread(2) — not memory-mapped: a mapped file
/// truncated on disk while in use (a dataset re-downloaded over the one being evaluated) kills the
/// process with SIGBUS on the next access, whereas a short read is an error the request can report.
public struct CIFARDataset: Sendable {
    public enum Layout: Sendable, Equatable {
        /// One label byte per record.
        case cifar10
        /// Two label bytes per record, coarse then fine; `label(at:)` returns the chosen one.
        case cifar100(useFineLabel: Bool)

        var labelBytes: Int { self == .cifar10 ? 1 : 2 }
        var labelOffset: Int { self == .cifar100(useFineLabel: true) ? 1 : 0 }
    }

    public static let side = 32
    public static let pixelBytes = 3 * 32 * 32

    public let path: String
    public let layout: Layout
    public let count: Int
    private let file: ReadOnlyFile

    public var recordSize: Int { layout.labelBytes + Self.pixelBytes }

    /// Opens (maps) the file and validates that it holds a whole, non-zero number of records.
    public init(path: String, layout: Layout = .cifar10) throws(ImageError) {
        file = try ReadOnlyFile(path: path)
        self.path = path
        self.layout = layout
        let recordSize = layout.labelBytes + Self.pixelBytes
        guard file.size > 0, file.size % recordSize == 0 else {
            throw .invalidDataset(input: path, reason: "size \(file.size) bytes is not a positive multiple of the " +
                                  "\(recordSize)-byte \(layout == .cifar10 ? "CIFAR-10" : "CIFAR-100") record")
        }
        count = file.size / recordSize
    }

    /// The label of record `index` (for CIFAR-100, the coarse or fine label as chosen by the layout).
    public func label(at index: Int) throws(ImageError) -> Int {
        try checkIndex(index)
        return Int(try file.read(count: 1, at: index * recordSize + layout.labelOffset)[0])
    }

    /// The labels of the first `limit` records (every record's when nil), in one pass over the file.
    public func labels(limit: Int? = nil) throws(ImageError) -> [Int] {
        let wanted = min(count, max(0, limit ?? count))
        var labels: [Int] = []
        labels.reserveCapacity(wanted)
        let recordsPerChunk = 256
        for first in stride(from: 0, to: wanted, by: recordsPerChunk) {
            let records = min(recordsPerChunk, wanted - first)
            let chunk = try file.read(count: records * recordSize, at: first * recordSize)
            for r in 0..<records { labels.append(Int(chunk[r * recordSize + layout.labelOffset])) }
        }
        return labels
    }

    /// Record `index` as a 32x32 RGB image (converted from planar to interleaved) and its label.
    public func record(at index: Int) throws(ImageError) -> (image: RGBImage, label: Int) {
        try checkIndex(index)
        let raw = try file.read(count: recordSize, at: index * recordSize)
        let label = Int(raw[layout.labelOffset])
        let plane = Self.side * Self.side
        let base = layout.labelBytes
        var pixels = [UInt8](repeating: 0, count: Self.pixelBytes)
        for p in 0..<plane {
            pixels[p * 3] = raw[base + p]
            pixels[p * 3 + 1] = raw[base + plane + p]
            pixels[p * 3 + 2] = raw[base + 2 * plane + p]
        }
        return (RGBImage(unchecked: Self.side, height: Self.side, pixels: pixels), label)
    }

    private func checkIndex(_ index: Int) throws(ImageError) {
        guard index >= 0, index < count else {
            throw .invalidArgument("\(path): record \(index) out of range 0..<\(count)")
        }
    }

    /// Class names from a `batches.meta.txt`-style file: one name per line, in label order. Surrounding
    /// whitespace (including a Windows CR) is trimmed and trailing empty lines are ignored.
    public static func labelNames(contentsOf path: String) throws(ImageError) -> [String] {
        let text = try readDatasetText(path)
        var names = text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        while names.last?.isEmpty == true { names.removeLast() }
        guard !names.isEmpty else { throw .invalidDataset(input: path, reason: "no class names") }
        if let blank = names.firstIndex(of: "") {
            throw .invalidDataset(input: path, reason: "line \(blank + 1) is empty")
        }
        return names
    }
}

/// `readText` for a dataset's own files: a file that cannot be read is an unreadable dataset.
func readDatasetText(_ path: String) throws(ImageError) -> String {
    do { return try readText(path) } catch {
        if case .io(let path, let reason) = error { throw .invalidDataset(input: path, reason: reason) }
        throw error
    }
}

/// A file read with pread(2) from any thread; closed when the last user lets go.
final class ReadOnlyFile: Sendable {
    let path: String
    let size: Int
    private let descriptor: Int32

    init(path: String) throws(ImageError) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw .invalidDataset(input: path, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(descriptor)
            throw .invalidDataset(input: path, reason: "not a regular file")
        }
        self.path = path
        self.descriptor = descriptor
        self.size = Int(info.st_size)
    }

    deinit { close(descriptor) }

    /// Exactly `count` bytes at `offset`; a short read (the file shrank on disk) is an error.
    func read(count: Int, at offset: Int) throws(ImageError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                let reason = n == 0 ? "file is shorter than when it was opened (changed on disk?)" : String(cString: strerror(errno))
                throw .invalidDataset(input: path, reason: "cannot read \(count) bytes at offset \(offset): \(reason)")
            }
            done += n
        }
        return bytes
    }
}

/// A small UTF-8 text file (label lists); refuses anything over 64 MB before reading it.
func readText(_ path: String) throws(ImageError) -> String {
    let bytes = try readFile(path, maxBytes: 64 << 20)
    return String(decoding: bytes, as: UTF8.self)
}
