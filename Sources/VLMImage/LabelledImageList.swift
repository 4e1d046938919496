import Foundation

/// A text file listing labelled images, one `path<TAB or spaces>label` per line.
///
/// If the line has a tab, the path is everything before the first tab (so paths may contain spaces);
/// otherwise the label is the last space-separated field. Relative paths are resolved against the
/// list file's folder. Empty lines and lines starting with `#` are skipped.
public struct LabelledImageList: Sendable {
    public struct Entry: Sendable, Equatable {
        public let path: String
        public let label: String
        public init(path: String, label: String) {
            self.path = path
            self.label = label
        }
    }

    public let entries: [Entry]

    public init(contentsOf path: String) throws(ImageError) {
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try self.init(parsing: try readDatasetText(path), baseDirectory: base, input: path)
    }

    /// Parses list text; `input` names it in error messages.
    public init(parsing text: String, baseDirectory: String, input: String) throws(ImageError) {
        var entries: [Entry] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let separator = line.firstIndex(of: "\t") ?? line.lastIndex(of: " ")
            guard let separator else {
                throw .invalidDataset(input: input, reason: "line \(number + 1) has no label: '\(line)'")
            }
            let file = line[..<separator].trimmingCharacters(in: .whitespaces)
            let label = line[line.index(after: separator)...].trimmingCharacters(in: .whitespaces)
            guard !file.isEmpty, !label.isEmpty else {
                throw .invalidDataset(input: input, reason: "line \(number + 1) needs 'path<TAB>label': '\(line)'")
            }
            let resolved = file.hasPrefix("/") ? file : URL(fileURLWithPath: baseDirectory).appendingPathComponent(file).path
            entries.append(Entry(path: resolved, label: label))
        }
        self.entries = entries
    }

    /// The distinct labels in order of first appearance (a label -> class-index mapping for evaluation).
    public var labels: [String] { Self.labels(of: entries) }

    /// The distinct labels of `entries` in order of first appearance.
    public static func labels(of entries: [Entry]) -> [String] {
        var seen = Set<String>()
        return entries.compactMap { seen.insert($0.label).inserted ? $0.label : nil }
    }
}
