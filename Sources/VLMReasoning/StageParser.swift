// Reading stage tags out of model text that may skip, repeat or mangle them.
//
// Small models write `<summary>`, `< SUMMARY >`, `[SUMMARY]`, `</ SUMMARY>`, forget to close a stage,
// close the wrong one, repeat a stage, or stop in the middle of a tag. The parser accepts all of these;
// what it cannot attribute is reported rather than guessed.
import Foundation

public struct ParsedStages: Sendable, Equatable {
    /// Content per tag (as spelled in the parser's tag list), trimmed; tags never written are absent.
    public var contents: [String: String]
    /// Text before the first tag.
    public var preamble: String
    /// Tags written more than once (the first non-empty content is kept: later copies are usually a
    /// small model looping).
    public var repeated: [String]
    /// Non-empty text outside every stage (after a close, before the next open).
    public var unattributed: [String]
}

public struct StageParser: Sendable {
    public let tags: [String]
    private let markerPattern: NSRegularExpression
    private let partialPattern: NSRegularExpression

    /// `tags` are plain names (letters, digits, underscores), matched case-insensitively.
    public init(tags: [String]) {
        self.tags = tags
        let names = tags.map { NSRegularExpression.escapedPattern(for: $0) }.joined(separator: "|")
        // < or [, optional slash, the name, optional colon, > or ]; spaces allowed anywhere inside.
        markerPattern = try! NSRegularExpression(pattern: #"[<\[]\s*(/?)\s*("# + names + #")\s*:?\s*[>\]]"#,
                                                 options: [.caseInsensitive])
        // An unfinished marker at the very end of the text ("<", "</CONC", "[SUMMA").
        partialPattern = try! NSRegularExpression(pattern: #"[<\[]\s*/?\s*([A-Za-z0-9_]*)\s*$"#)
    }

    /// A tag marker found in text.
    struct Marker {
        let range: Range<String.Index>
        let closing: Bool
        let tag: String
    }

    func markers(in text: String) -> [Marker] {
        let ns = NSRange(text.startIndex..., in: text)
        return markerPattern.matches(in: text, range: ns).compactMap { match in
            guard let range = Range(match.range, in: text), let slash = Range(match.range(at: 1), in: text),
                  let name = Range(match.range(at: 2), in: text) else { return nil }
            let spelled = text[name].uppercased()
            guard let tag = tags.first(where: { $0.uppercased() == spelled }) else { return nil }
            return Marker(range: range, closing: !text[slash].isEmpty, tag: tag)
        }
    }

    /// `text` without an unfinished tag marker at its end (a stage cut off by the token limit).
    public func removingPartialMarker(_ text: String) -> String {
        let ns = NSRange(text.startIndex..., in: text)
        guard let match = partialPattern.firstMatch(in: text, range: ns), let range = Range(match.range, in: text),
              let name = Range(match.range(at: 1), in: text) else { return text }
        let partial = text[name].uppercased()
        guard tags.contains(where: { $0.uppercased().hasPrefix(partial) }) else { return text }
        return String(text[..<range.lowerBound])
    }

    /// The whole output of a model that wrote every stage itself.
    public func parse(_ text: String) -> ParsedStages {
        let text = removingPartialMarker(text)
        var result = ParsedStages(contents: [:], preamble: "", repeated: [], unattributed: [])
        var open: String? = nil
        var anyMarker = false
        var cursor = text.startIndex

        func attribute(_ segment: Substring, to tag: String?) {
            let content = segment.trimmingCharacters(in: .whitespacesAndNewlines)
            guard let tag else {
                if !anyMarker { result.preamble = content } else if !content.isEmpty { result.unattributed.append(content) }
                return
            }
            if let existing = result.contents[tag], !existing.isEmpty {
                if !result.repeated.contains(tag) { result.repeated.append(tag) }
            } else if !content.isEmpty || result.contents[tag] == nil {
                result.contents[tag] = content
            }
        }

        for marker in markers(in: text) {
            let segment = text[cursor..<marker.range.lowerBound]
            if marker.closing {
                // Text before a close belongs to the open stage; with none open the opening was skipped.
                attribute(segment, to: open ?? marker.tag)
                open = nil
            } else {
                // An opening while another stage is open closes that one implicitly.
                attribute(segment, to: open)
                if result.contents[marker.tag] != nil, !(result.contents[marker.tag] ?? "").isEmpty,
                   !result.repeated.contains(marker.tag) {
                    result.repeated.append(marker.tag)
                }
                open = marker.tag
            }
            anyMarker = true
            cursor = marker.range.upperBound
        }
        attribute(text[cursor...], to: open)
        return result
    }

    /// The content of one generated stage: the text up to the first marker of any known tag (the model
    /// closing the stage, however mangled, or starting another), without an unfinished marker at the
    /// end, trimmed. `closed` is true when a marker ended it.
    public func stageContent(_ generated: String) -> (content: String, closed: Bool) {
        if let first = markers(in: generated).first {
            return (String(generated[..<first.range.lowerBound]).trimmingCharacters(in: .whitespacesAndNewlines), true)
        }
        return (removingPartialMarker(generated).trimmingCharacters(in: .whitespacesAndNewlines), false)
    }

    /// Stop strings that end generation at any exact opening or closing marker of the known tags.
    public var stopStrings: [String] { tags.flatMap { ["<\($0)>", "</\($0)>"] } }
}
