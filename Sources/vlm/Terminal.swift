import Foundation
import VLMWire

/// Everything vlm writes goes through here.
///
/// stdout carries results. Each write is one write(2) of whole text, so a pipe receives every line
/// the moment it exists (C stdio would hold it back in a 4 KiB block buffer).
/// stderr carries notes and, only when it is a terminal, one transient progress line. When stdout
/// shares the terminal, the progress line is cleared before anything is printed and redrawn after
/// a complete line; it is not drawn while stdout is in the middle of a line (streamed tokens), which
/// would otherwise be overwritten.
enum Terminal {
    /// A result line on stdout.
    static func line(_ text: String) { screen.write(text + "\n", to: .standardOutput) }

    /// Streamed text on stdout (tokens): no newline added.
    static func text(_ text: String) { screen.write(text, to: .standardOutput) }

    /// One JSON value as one line on stdout.
    static func json(_ value: some Encodable) { writeJSON(value) }

    /// The same for a value built in place (`["event": "token", ...]`).
    static func json(_ value: JSONValue) { writeJSON(value) }

    private static func writeJSON(_ value: some Encodable) {
        if let data = try? JSONCoding.encode(value), let text = String(data: data, encoding: .utf8) { line(text) }
    }

    /// A message line on stderr (a step, a warning, an error). `freshLine` first erases what the
    /// terminal's row holds (the echoed ^C).
    static func note(_ text: String, freshLine: Bool = false) {
        screen.write(text + "\n", to: .standardError, eraseRow: freshLine)
    }

    /// Shows `text` as the progress line (nil removes it). Does nothing unless stderr is a terminal.
    static func progress(_ text: String?) { screen.setProgress(text) }

    /// Ends a line stdout left open (streamed tokens), so what follows starts on a line of its own.
    static func finishLine() { screen.finishLine() }

    private static let screen = Screen()
}

private final class Screen: @unchecked Sendable {
    enum Stream { case standardOutput, standardError }

    private let lock = NSLock()
    private let stdoutIsTerminal = isatty(STDOUT_FILENO) != 0
    private let stderrIsTerminal = isatty(STDERR_FILENO) != 0
    // Guarded by `lock`:
    private var progress: String?
    private var progressShown = false
    private var stdoutMidLine = false

    func write(_ text: String, to stream: Stream, eraseRow: Bool = false) {
        guard !text.isEmpty else { return }
        lock.withLock {
            clearProgress()
            if eraseRow, stderrIsTerminal, !(stdoutMidLine && stdoutIsTerminal) { writeAll(STDERR_FILENO, "\r\u{1B}[2K") }
            switch stream {
            case .standardOutput:
                writeAll(STDOUT_FILENO, text)
                stdoutMidLine = !text.hasSuffix("\n")
            case .standardError:
                // On a shared terminal a note must not continue a line of streamed tokens.
                if stdoutMidLine, stdoutIsTerminal, stderrIsTerminal {
                    writeAll(STDERR_FILENO, "\n")
                    stdoutMidLine = false
                }
                writeAll(STDERR_FILENO, text)
            }
            drawProgress()
        }
    }

    func setProgress(_ text: String?) {
        guard stderrIsTerminal else { return }
        lock.withLock {
            progress = text
            clearProgress()
            drawProgress()
        }
    }

    func finishLine() {
        lock.withLock {
            if stdoutMidLine { clearProgress(); writeAll(STDOUT_FILENO, "\n"); stdoutMidLine = false }
        }
    }

    private func clearProgress() {
        guard progressShown else { return }
        writeAll(STDERR_FILENO, "\r\u{1B}[2K")
        progressShown = false
    }

    private func drawProgress() {
        guard let progress, stderrIsTerminal, !(stdoutMidLine && stdoutIsTerminal) else { return }
        // One row only: a wrapped line could not be cleared with \r.
        writeAll(STDERR_FILENO, "\r\u{1B}[2K" + String(progress.prefix(max(10, terminalColumns() - 1))))
        progressShown = true
    }

    private func terminalColumns() -> Int {
        var size = winsize()
        guard ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }

    private func writeAll(_ descriptor: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            // Whoever read stdout has gone (vlm … | head): stop, as SIGPIPE would; the daemon sees
            // its input end and stops too.
            if written < 0, errno == EPIPE, descriptor == STDOUT_FILENO { Foundation.exit(141) }
            if written <= 0 { return }
            bytes = bytes.dropFirst(written)
        }
    }
}
