import Foundation

/// Reads framed messages from a file descriptor on its own thread (a blocking read must not hold
/// one of the few cooperative-pool threads) and hands them out as an AsyncStream.
public final class FrameReader: Sendable {
    public let events: AsyncStream<FrameEvent>

    public convenience init(fileDescriptor: Int32, maxMessageBytes: Int) {
        self.init(fileDescriptor: fileDescriptor, decoder: FrameDecoder(maxMessageBytes: maxMessageBytes))
    }

    public init(fileDescriptor: Int32, decoder: some MessageDecoder) {
        let (stream, continuation) = AsyncStream<FrameEvent>.makeStream()
        events = stream
        let thread = Thread { [decoder] in
            var decoder = decoder
            let bufferSize = 64 * 1024
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 1)
            defer { buffer.deallocate() }
            while true {
                let count = read(fileDescriptor, buffer.baseAddress, bufferSize)
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                for event in decoder.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<count])) {
                    continuation.yield(event)
                }
            }
            for event in decoder.finish() { continuation.yield(event) }
            continuation.finish()
        }
        thread.name = "vlmd.reader"
        thread.start()
    }
}

/// Writes framed messages (LSP's by default, or `lineFrame` for MCP) to a file descriptor, one at a time,
/// in the order `send` is called.
///
/// Back-pressure: `send` returns only once its bytes are in the pipe, so a producer that streams
/// faster than the client reads is slowed to the client's pace instead of growing a queue.
public final class FrameWriter: Sendable {
    private let fileDescriptor: Int32
    private let framing: @Sendable (Data) -> Data
    private let queue = DispatchQueue(label: "vlmd.writer")

    public init(fileDescriptor: Int32, framing: @escaping @Sendable (Data) -> Data = frame) {
        self.fileDescriptor = fileDescriptor
        self.framing = framing
        signal(SIGPIPE, SIG_IGN)  // a vanished client is an error return, not a signal that kills us
    }

    public func send(_ body: Data) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.writeAll(self.framing(body))
                continuation.resume()
            }
        }
    }

    /// Blocks until everything sent so far is written.
    public func flush() {
        queue.sync {}
    }

    private func writeAll(_ data: Data) {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fileDescriptor, raw.baseAddress! + offset, raw.count - offset)
                if n < 0, errno == EINTR { continue }
                if n <= 0 { return }  // the peer is gone; the reader will see end of input
                offset += n
            }
        }
    }
}
