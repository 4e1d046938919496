import Foundation

/// Labelled images in any format vlmd reads — a CIFAR binary file or a labelled image list — with
/// every label checked against the class names before any image is read, so a bad dataset fails
/// before work starts rather than part-way through. Zero-shot evaluation and prompt learning both
/// read their datasets through here, so they accept the same formats and refuse the same files.
public struct LabelledDataset: Sendable {
    public enum Format: String, CaseIterable, Sendable {
        case cifar10
        case cifar100
        /// CIFAR-100 records labelled with their 20 superclasses.
        case cifar100Coarse = "cifar100-coarse"
        /// A `LabelledImageList` file: `path<TAB>label` lines.
        case list

        var cifarLayout: CIFARDataset.Layout? {
            switch self {
            case .cifar10: .cifar10
            case .cifar100: .cifar100(useFineLabel: true)
            case .cifar100Coarse: .cifar100(useFineLabel: false)
            case .list: nil
            }
        }

        /// Lists name their classes themselves; CIFAR files hold only label numbers.
        public var needsClassNames: Bool { self != .list }
    }

    public let path: String
    public let format: Format
    /// Class names in label order.
    public let classNames: [String]
    /// Each image's index into `classNames`.
    public let labels: [Int]
    private let cifar: CIFARDataset?
    private let list: [LabelledImageList.Entry]
    private let decoder: PNGDecoder

    /// Opens the first `limit` images (all when nil) of `path` and checks their labels. CIFAR formats
    /// need `classNames` (label numbers index them); a list takes, when `classNames` is nil, its own
    /// labels in order of first appearance, and otherwise must use only those names (a test list
    /// checked against its training classes). A list's images must all be readable files now, not
    /// only those a sampler happens to draw. List images are decoded under `pixelBudget`.
    public init(path: String, format: Format, classNames: [String]?, limit: Int? = nil, pixelBudget: Int) throws(ImageError) {
        self.path = path
        self.format = format
        decoder = PNGDecoder(pixelBudget: pixelBudget)
        if let layout = format.cifarLayout {
            guard let classNames else { throw .invalidArgument("a \(format.rawValue) dataset needs class names") }
            let dataset = try CIFARDataset(path: path, layout: layout)
            let labels = try dataset.labels(limit: limit)
            if let bad = labels.firstIndex(where: { $0 >= classNames.count }) {
                throw .invalidDataset(input: path, reason: "record \(bad) has label \(labels[bad]) but only \(classNames.count) class names were given")
            }
            (self.classNames, self.labels, cifar, list) = (classNames, labels, dataset, [])
        } else {
            let entries = Array(try LabelledImageList(contentsOf: path).entries.prefix(limit ?? .max))
            guard !entries.isEmpty else { throw .invalidDataset(input: path, reason: "lists no labelled images") }
            let names = classNames ?? LabelledImageList.labels(of: entries)
            var labels: [Int] = []
            for (index, entry) in entries.enumerated() {
                guard let label = names.firstIndex(of: entry.label) else {
                    throw .invalidDataset(input: path, reason: "line \(index + 1) has label '\(entry.label)', not one of the class names")
                }
                labels.append(label)
            }
            if let missing = entries.firstIndex(where: { !FileManager.default.isReadableFile(atPath: $0.path) }) {
                throw .invalidDataset(input: path, reason: "line \(missing + 1): image \(entries[missing].path) does not exist or cannot be read")
            }
            (self.classNames, self.labels, cifar, list) = (names, labels, nil, entries)
        }
    }

    public var count: Int { labels.count }

    /// Image `index` (decoded on demand: a dataset is never held in memory whole).
    public func image(at index: Int) throws(ImageError) -> RGBImage {
        guard labels.indices.contains(index) else { throw .invalidArgument("\(path): image \(index) out of range 0..<\(count)") }
        if let cifar { return try cifar.record(at: index).image }
        return try decoder.decode(contentsOf: list[index].path)
    }
}
