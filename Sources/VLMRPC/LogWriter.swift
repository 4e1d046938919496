import Foundation

/// Writes log lines to a file descriptor (stderr) without ever blocking or trapping the caller.
///
/// A daemon's stderr is whatever its parent made of it: closed (`2>&-`), a pipe whose reader has
/// gone, or a pipe nobody drains. `FileHandle.write` traps on the first two, and a blocking write
/// stalls on the third. Here callers only append to a bounded in-memory queue; one thread of its own
/// drains it with write(2), ignoring failures. When the queue is full the line is dropped and
/// counted (`droppedLines`, reported by daemon/status).
public final class LogWriter: @unchecked Sendable {
    public static let standardError = LogWriter(fileDescriptor: STDERR_FILENO)

    private let fileDescriptor: Int32
    private let maxQueuedBytes: Int
    private let condition = NSCondition()
    private var queue: [Data] = []
    private var queuedBytes = 0
    private var dropped = 0
    private var started = false

    /// - Parameter maxQueuedBytes: how much may wait for a slow or stuck reader before lines are dropped.
    public init(fileDescriptor: Int32, maxQueuedBytes: Int = 256 << 10) {
        self.fileDescriptor = fileDescriptor
        self.maxQueuedBytes = maxQueuedBytes
        signal(SIGPIPE, SIG_IGN)  // a vanished reader is an EPIPE return, not a signal that kills us
    }

    /// Queues one line (a newline is added); never blocks on the descriptor.
    public func write(_ line: String) {
        let data = Data((line + "\n").utf8)
        condition.lock()
        defer { condition.unlock() }
        startDrainingIfNeeded()
        guard queuedBytes + data.count <= maxQueuedBytes else {
            dropped += 1
            return
        }
        queue.append(data)
        queuedBytes += data.count
        condition.signal()
    }

    /// Lines dropped so far because the queue was full or the descriptor refused them.
    public var droppedLines: Int {
        condition.lock()
        defer { condition.unlock() }
        return dropped
    }

    /// Waits (at most `timeout`) until every queued line has been handed to the descriptor; for exit paths.
    public func drain(timeout: Duration = .milliseconds(500)) {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds) + Double(timeout.components.attoseconds) * 1e-18)
        condition.lock()
        defer { condition.unlock() }
        while queuedBytes > 0, condition.wait(until: deadline) {}
    }

    private func startDrainingIfNeeded() {
        guard !started else { return }
        started = true
        let thread = Thread { [self] in drainForever() }
        thread.name = "vlmd.log"
        thread.start()
    }

    private func drainForever() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let line = queue.removeFirst()
            condition.unlock()
            let written = writeAll(line)
            condition.lock()
            queuedBytes -= line.count
            if !written { dropped += 1 }
            condition.broadcast()
            condition.unlock()
        }
    }

    /// write(2) until done; false when the descriptor refuses (closed, EPIPE, ...). A non-blocking
    /// descriptor that is full is waited on here, on this thread only.
    private func writeAll(_ data: Data) -> Bool {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fileDescriptor, raw.baseAddress! + offset, raw.count - offset)
                if n > 0 { offset += n; continue }
                if n < 0, errno == EINTR { continue }
                if n < 0, errno == EAGAIN {
                    var poller = pollfd(fd: fileDescriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&poller, 1, 1000)
                    continue
                }
                return false
            }
            return true
        }
    }
}

/// Makes sure descriptors 0, 1 and 2 are open (on /dev/null when the parent closed them), so a file
/// the daemon opens later can never land on one of them and receive protocol output or logs.
public func reserveStandardDescriptors() {
    for descriptor in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where fcntl(descriptor, F_GETFD) == -1 {
        let null = open("/dev/null", descriptor == STDIN_FILENO ? O_RDONLY : O_WRONLY)
        if null >= 0, null != descriptor {
            dup2(null, descriptor)
            close(null)
        }
    }
}
