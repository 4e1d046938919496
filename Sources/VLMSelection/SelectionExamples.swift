// The JSON-lines files selector methods read: examples {image, text, box | map} for training and
// evaluation, and {image, question} lines for distillation. Every line is read and checked before
// anything is computed; errors name the request field and the line.
import Foundation

/// One line of an examples file: an image (an absolute path), a query, and its box or target map.
public struct SelectionExampleLine: Sendable {
    public let line: Int
    public let image: String
    public let text: String
    public let box: PixelRect?
    public let map: [Float]?

    public init(line: Int, image: String, text: String, box: PixelRect?, map: [Float]?) {
        (self.line, self.image, self.text, self.box, self.map) = (line, image, text, box, map)
    }
}

public enum SelectionExampleFile {
    private struct Line: Decodable {
        let image: String
        let text: String
        let box: [Int]?
        let map: [Float]?
    }

    /// Reads and checks every line (image paths are relative to the file) before anything is computed.
    public static func read(_ path: String, field: String) throws -> [SelectionExampleLine] {
        try readJSONLines(path, field: field, expected: "{\"image\", \"text\", \"box\" or \"map\"}").map { (number, line: Line) in
            guard !line.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw SelectionError.invalidInput("\(field): line \(number): the text is empty")
            }
            guard (line.box == nil) != (line.map == nil) else {
                throw SelectionError.invalidInput("\(field): line \(number): expected exactly one of \"box\" and \"map\"")
            }
            var box: PixelRect?
            if let b = line.box {
                guard b.count == 4, b[2] > 0, b[3] > 0, b[0] >= 0, b[1] >= 0 else {
                    throw SelectionError.invalidInput("\(field): line \(number): box must be [x, y, width, height] with x, y ≥ 0 and width, height ≥ 1")
                }
                box = PixelRect(x: b[0], y: b[1], width: b[2], height: b[3])
            }
            return SelectionExampleLine(line: number, image: resolvedImage(line.image, besides: path), text: line.text, box: box, map: line.map)
        }
    }
}

/// The non-blank lines of a JSON-lines file, each decoded as `T`, with their line numbers; errors name
/// the field and the line. An unreadable file is `invalidFile`, a file with no lines `invalidInput`.
func readJSONLines<T: Decodable>(_ path: String, field: String, expected: String) throws -> [(number: Int, value: T)] {
    let text: String
    do { text = try String(contentsOf: URL(fileURLWithPath: path), encoding: .utf8) } catch {
        throw SelectionError.invalidFile(path: path, reason: "\(field): cannot read it: \(error.localizedDescription)")
    }
    var values: [(number: Int, value: T)] = []
    for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
    where !raw.trimmingCharacters(in: .whitespaces).isEmpty {
        do { values.append((index + 1, try JSONDecoder().decode(T.self, from: Data(raw.utf8)))) } catch {
            throw SelectionError.invalidInput("\(field): line \(index + 1): expected \(expected) (\(error))")
        }
    }
    guard !values.isEmpty else { throw SelectionError.invalidInput("\(field): \(path) holds no examples") }
    return values
}

/// An image path of a JSON-lines file: absolute, or relative to the file's directory.
func resolvedImage(_ image: String, besides file: String) -> String {
    image.hasPrefix("/") ? image : URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent(image).path
}

/// A JSON-lines file of {image, question} lines (image paths relative to the file), for selector/distil.
public enum QuestionFile {
    private struct Line: Decodable { let image: String; let question: String }

    public static func read(_ path: String, field: String) throws -> [SelectionExampleLine] {
        try readJSONLines(path, field: field, expected: "{\"image\", \"question\"}").map { (number, line: Line) in
            guard !line.question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw SelectionError.invalidInput("\(field): line \(number): the question is empty")
            }
            return SelectionExampleLine(line: number, image: resolvedImage(line.image, besides: path), text: line.question, box: nil, map: nil)
        }
    }
}

