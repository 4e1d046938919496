import Foundation

/// What the framing layer found in the byte stream.
public enum FrameEvent: Sendable, Equatable {
    /// A complete message body (exactly Content-Length bytes).
    case message(Data)
    /// A message larger than the limit. Its body was skipped without being buffered.
    case oversize(length: Int, limit: Int)
    /// A header block that could not be accepted. When it carried a usable Content-Length, that
    /// many body bytes were skipped, so the stream stays in step; otherwise decoding resynchronised
    /// at the end of the block.
    case badHeader(String)
}

/// Incremental decoder for the LSP base protocol: `Header: value\r\n` lines, a blank line, then
/// exactly Content-Length bytes of body. Bytes can arrive split at any point.
///
/// Headers are read line by line, so a Content-Length is known whatever else is wrong with its
/// block (a second Content-Length, a foreign charset, LF-only line ends, an overlong block): the
/// message is refused but its body is still consumed, and the next message starts where it should.
///
/// Memory is bounded whatever the peer sends: at most `maxHeaderBytes` of a header line are kept,
/// and a body is buffered only when its announced length is within `maxMessageBytes` (bigger
/// bodies are counted off as they stream past).
public struct FrameDecoder: Sendable {
    public let maxMessageBytes: Int
    public let maxHeaderBytes: Int

    private enum State: Sendable {
        case header
        case body(remaining: Int)
        case skipping(remaining: Int)
    }

    /// What the header lines of the current block said so far.
    private struct HeaderBlock: Sendable {
        var lines = 0
        var bytes = 0
        var contentLength: Int?
        var problems: [String] = []

        mutating func note(_ problem: String) {
            if problems.count < 4, !problems.contains(problem) { problems.append(problem) }
        }
    }

    private var state: State = .header
    private var line: [UInt8] = []
    private var lineTruncated = false
    private var block = HeaderBlock()
    private var body = Data()

    public init(maxMessageBytes: Int, maxHeaderBytes: Int = 8192) {
        self.maxMessageBytes = maxMessageBytes
        self.maxHeaderBytes = maxHeaderBytes
    }

    /// Feeds bytes and returns the events they complete, in order.
    public mutating func feed<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [FrameEvent] {
        var events: [FrameEvent] = []
        var index = bytes.startIndex
        while index != bytes.endIndex {
            switch state {
            case .header:
                let byte = bytes[index]
                index = bytes.index(after: index)
                if let event = consumeHeaderByte(byte) { events.append(event) }
            case .body(let remaining):
                let end = bytes.index(index, offsetBy: remaining, limitedBy: bytes.endIndex) ?? bytes.endIndex
                body.append(contentsOf: bytes[index..<end])
                let left = remaining - bytes.distance(from: index, to: end)
                index = end
                if left == 0 {
                    events.append(.message(body))
                    body = Data()
                    state = .header
                } else {
                    state = .body(remaining: left)
                }
            case .skipping(let remaining):
                let end = bytes.index(index, offsetBy: remaining, limitedBy: bytes.endIndex) ?? bytes.endIndex
                let left = remaining - bytes.distance(from: index, to: end)
                index = end
                state = left == 0 ? .header : .skipping(remaining: left)
            }
        }
        return events
    }

    /// True when no partial message is pending (a clean place for the stream to end).
    public var isAtMessageBoundary: Bool {
        if case .header = state { return line.isEmpty && block.lines == 0 }
        return false
    }

    private mutating func consumeHeaderByte(_ byte: UInt8) -> FrameEvent? {
        block.bytes += 1
        guard byte == 10 else {  // not LF: part of the current line
            if line.count < maxHeaderBytes { line.append(byte) } else { lineTruncated = true }
            return nil
        }
        var text = line[...]
        if text.last == 13 { text = text.dropLast() } else { block.note("header lines must end in CRLF, not a bare LF") }
        defer {
            line.removeAll(keepingCapacity: true)
            lineTruncated = false
        }
        if text.isEmpty {
            // A blank line before any header line is stray line-end bytes between messages; skip it.
            guard block.lines > 0 else {
                block = HeaderBlock()
                return nil
            }
            return endOfBlock()
        }
        block.lines += 1
        if lineTruncated { block.note("a header line is longer than \(maxHeaderBytes) bytes") }
        readHeaderLine(text)
        return nil
    }

    private mutating func readHeaderLine(_ bytes: ArraySlice<UInt8>) {
        guard bytes.allSatisfy({ $0 < 0x80 }), let text = String(bytes: bytes, encoding: .ascii) else {
            block.note("header is not ASCII text")
            return
        }
        var line = Substring(text)
        guard let colon = line.firstIndex(of: ":") else {
            block.note("malformed header line '\(line.prefix(80))' (expected 'Name: value')")
            return
        }
        if !isToken(line[..<colon]) {
            // The tail of a body whose header was refused runs into the next header without a line
            // break; pick up the Content-Length that follows it instead of losing that message too.
            guard let range = line.range(of: "content-length:", options: [.caseInsensitive, .backwards]) else {
                block.note("malformed header line '\(line.prefix(80))' (expected 'Name: value')")
                return
            }
            line = line[range.lowerBound...]
        }
        let separator = line.firstIndex(of: ":")!
        let name = line[..<separator].trimmingCharacters(in: .whitespaces).lowercased()
        let value = line[line.index(after: separator)...].trimmingCharacters(in: .whitespaces)
        switch name {
        case "content-length":
            guard !value.isEmpty, value.count <= 18, value.allSatisfy({ $0.isASCII && $0.isNumber }), let parsed = Int(value) else {
                block.note("Content-Length '\(value.prefix(40))' is not a non-negative integer")
                return
            }
            if block.contentLength != nil {
                block.note("Content-Length given twice")
            } else {
                block.contentLength = parsed
            }
        case "content-type":
            let lower = value.lowercased()
            if lower.contains("charset"), !lower.contains("utf-8"), !lower.contains("utf8") {
                block.note("unsupported Content-Type '\(value.prefix(80))': bodies must be UTF-8")
            }
        default:
            break  // unknown headers are ignored, as LSP allows
        }
    }

    private func isToken(_ name: Substring) -> Bool {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        return !trimmed.isEmpty && trimmed.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0)
        }
    }

    private mutating func endOfBlock() -> FrameEvent? {
        var finished = block
        block = HeaderBlock()
        if finished.bytes > maxHeaderBytes { finished.note("header block longer than \(maxHeaderBytes) bytes") }
        guard let length = finished.contentLength else {
            finished.note("missing Content-Length header")
            return .badHeader(finished.problems.joined(separator: "; "))
        }
        if length > maxMessageBytes {
            state = length == 0 ? .header : .skipping(remaining: length)
            return .oversize(length: length, limit: maxMessageBytes)
        }
        if !finished.problems.isEmpty {
            state = length == 0 ? .header : .skipping(remaining: length)
            return .badHeader(finished.problems.joined(separator: "; ") + " (the \(length)-byte body was skipped)")
        }
        if length == 0 { return .message(Data()) }
        body.reserveCapacity(length)
        state = .body(remaining: length)
        return nil
    }
}

/// Frames a message body for the wire.
public func frame(_ body: Data) -> Data {
    var out = Data("Content-Length: \(body.count)\r\n\r\n".utf8)
    out.append(body)
    return out
}
