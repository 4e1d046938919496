import Foundation

/// A decoder turning a byte stream into messages: LSP framing (`FrameDecoder`) or one JSON value
/// per line (`LineDecoder`, MCP's stdio transport).
public protocol MessageDecoder: Sendable {
    /// Feeds bytes (split anywhere) and returns the events they complete, in order.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [FrameEvent]
    /// Called once at end of input: a last line without its newline still counts.
    mutating func finish() -> [FrameEvent]
}

extension FrameDecoder: MessageDecoder {
    /// A message cut short by end of input is incomplete: nothing to report.
    public mutating func finish() -> [FrameEvent] { [] }
}

/// Newline-delimited messages (MCP stdio): each `\n`-terminated line is one message body; a `\r`
/// before the `\n` and blank lines are ignored. A line longer than `maxMessageBytes` is counted off
/// without being buffered and reported as `.oversize`, so memory stays bounded whatever the peer sends.
public struct LineDecoder: MessageDecoder {
    public let maxMessageBytes: Int
    private var line = Data()
    private var overflow = 0  // bytes of the current line beyond the limit; > 0 means it is being skipped

    public init(maxMessageBytes: Int) { self.maxMessageBytes = maxMessageBytes }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [FrameEvent] {
        var events: [FrameEvent] = []
        var start = 0
        while start < bytes.count {
            let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n"))
            let end = newline ?? bytes.count
            append(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
            if newline != nil, let event = endLine() { events.append(event) }
            start = end + 1
        }
        return events
    }

    public mutating func finish() -> [FrameEvent] { endLine().map { [$0] } ?? [] }

    private mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if overflow > 0 || line.count + bytes.count > maxMessageBytes {
            overflow += line.count + bytes.count
            line.removeAll()
        } else {
            line.append(contentsOf: bytes)
        }
    }

    private mutating func endLine() -> FrameEvent? {
        defer { line.removeAll(keepingCapacity: true); overflow = 0 }
        if overflow > 0 { return .oversize(length: overflow, limit: maxMessageBytes) }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }) { return nil }
        return .message(line)
    }
}

/// One message as a line: the body (compact JSON never contains a raw newline) and `\n`.
public func lineFrame(_ body: Data) -> Data {
    var out = body
    out.append(UInt8(ascii: "\n"))
    return out
}
