import Foundation

/// A dataset in CIFAR's binary format: fixed-size records of label byte(s) followed by a 32x32 image
/// stored planar (1024 R bytes, 1024 G, 1024 B, each row-major).
///
/// CIFAR-10 records have one label byte; CIFAR-100 records have two (coarse, then fine). The file is
/// memory-mapped, so opening costs nothing and records are read on demand; the mapping is read-only
/// and immutable, which is what makes the struct safely Sendable.
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
    private let data: Data

    public var recordSize: Int { layout.labelBytes + Self.pixelBytes }

    /// Opens (maps) the file and validates that it holds a whole, non-zero number of records.
    public init(path: String, layout: Layout = .cifar10) throws(ImageError) {
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw .io(path: path, reason: "cannot open: \(error.localizedDescription)")
        }
        self.path = path
        self.layout = layout
        let recordSize = layout.labelBytes + Self.pixelBytes
        guard !data.isEmpty, data.count % recordSize == 0 else {
            throw .invalidDataset(input: path, reason: "size \(data.count) bytes is not a positive multiple of the " +
                                  "\(recordSize)-byte \(layout == .cifar10 ? "CIFAR-10" : "CIFAR-100") record")
        }
        count = data.count / recordSize
    }

    /// The label of record `index` (for CIFAR-100, the coarse or fine label as chosen by the layout).
    public func label(at index: Int) throws(ImageError) -> Int {
        try checkIndex(index)
        return Int(data[data.startIndex + index * recordSize + layout.labelOffset])
    }

    /// Record `index` as a 32x32 RGB image (converted from planar to interleaved) and its label.
    public func record(at index: Int) throws(ImageError) -> (image: RGBImage, label: Int) {
        let label = try label(at: index)
        let plane = Self.side * Self.side
        let base = index * recordSize + layout.labelBytes
        var pixels = [UInt8](repeating: 0, count: Self.pixelBytes)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            for p in 0..<plane {
                pixels[p * 3] = raw[base + p]
                pixels[p * 3 + 1] = raw[base + plane + p]
                pixels[p * 3 + 2] = raw[base + 2 * plane + p]
            }
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
        let text = try readText(path)
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

/// A small UTF-8 text file (label lists); refuses anything over 64 MB before reading it.
func readText(_ path: String) throws(ImageError) -> String {
    let bytes = try readFile(path, maxBytes: 64 << 20)
    return String(decoding: bytes, as: UTF8.self)
}
