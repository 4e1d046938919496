import Foundation

/// What the framing layer found in the byte stream.
public enum FrameEvent: Sendable, Equatable {
    /// A complete message body (exactly Content-Length bytes).
    case message(Data)
    /// A message larger than the limit. Its body was skipped without being buffered.
    case oversize(length: Int, limit: Int)
    /// A header block that could not be understood; it was discarded and decoding resynchronised
    /// at the end of that block.
    case badHeader(String)
}

/// Incremental decoder for the LSP base protocol: `Header: value\r\n` lines, a blank line, then
/// exactly Content-Length bytes of body. Bytes can arrive split at any point.
///
/// Memory is bounded whatever the peer sends: a header block may be at most `maxHeaderBytes`, and a
/// body is buffered only when its announced length is within `maxMessageBytes` (bigger bodies are
/// counted off as they stream past).
public struct FrameDecoder: Sendable {
    public let maxMessageBytes: Int
    public let maxHeaderBytes: Int

    private enum State: Sendable {
        case header
        case body(remaining: Int)
        case skipping(remaining: Int)
        /// After an overlong header: discard until the next blank line.
        case resyncing
    }

    private var state: State = .header
    private var header: [UInt8] = []
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
            case .header, .resyncing:
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
        if case .header = state { return header.isEmpty }
        return false
    }

    private mutating func consumeHeaderByte(_ byte: UInt8) -> FrameEvent? {
        header.append(byte)
        let endsBlock = header.count >= 4 && header.suffix(4).elementsEqual([13, 10, 13, 10])
        if case .resyncing = state {
            if header.count > 4 { header.removeFirst(header.count - 4) }
            if endsBlock { header.removeAll(keepingCapacity: true); state = .header }
            return nil
        }
        if endsBlock {
            let block = header
            header.removeAll(keepingCapacity: true)
            return startBody(headerBlock: block)
        }
        if header.count > maxHeaderBytes {
            header.removeAll(keepingCapacity: true)
            state = .resyncing
            return .badHeader("header block longer than \(maxHeaderBytes) bytes without a blank line")
        }
        return nil
    }

    private mutating func startBody(headerBlock: [UInt8]) -> FrameEvent? {
        switch Self.contentLength(in: headerBlock.dropLast(4)) {
        case .failure(let reason):
            return .badHeader(reason.message)
        case .success(let length):
            if length > maxMessageBytes {
                state = length == 0 ? .header : .skipping(remaining: length)
                return .oversize(length: length, limit: maxMessageBytes)
            }
            if length == 0 { return .message(Data()) }
            body.reserveCapacity(length)
            state = .body(remaining: length)
            return nil
        }
    }

    struct HeaderError: Error { let message: String }

    /// Parses the header lines. Content-Length is required; Content-Type, if present, must be JSON in UTF-8.
    static func contentLength(in block: ArraySlice<UInt8>) -> Result<Int, HeaderError> {
        guard let text = String(bytes: block, encoding: .ascii) ?? String(bytes: block, encoding: .utf8) else {
            return .failure(HeaderError(message: "header is not ASCII text"))
        }
        var length: Int?
        for line in text.components(separatedBy: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else {
                return .failure(HeaderError(message: "malformed header line '\(line.prefix(80))' (expected 'Name: value')"))
            }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch name {
            case "content-length":
                guard !value.isEmpty, value.count <= 18, value.allSatisfy(\.isASCII), value.allSatisfy(\.isNumber),
                    let parsed = Int(value)
                else {
                    return .failure(HeaderError(message: "Content-Length '\(value.prefix(40))' is not a non-negative integer"))
                }
                if length != nil { return .failure(HeaderError(message: "Content-Length given twice")) }
                length = parsed
            case "content-type":
                let lower = value.lowercased()
                if lower.contains("charset"), !lower.contains("utf-8"), !lower.contains("utf8") {
                    return .failure(HeaderError(message: "unsupported Content-Type '\(value)': bodies must be UTF-8"))
                }
            default:
                continue  // unknown headers are ignored, as LSP allows
            }
        }
        guard let length else { return .failure(HeaderError(message: "missing Content-Length header")) }
        return .success(length)
    }
}

/// Frames a message body for the wire.
public func frame(_ body: Data) -> Data {
    var out = Data("Content-Length: \(body.count)\r\n\r\n".utf8)
    out.append(body)
    return out
}
