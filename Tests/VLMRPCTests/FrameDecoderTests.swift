import Foundation
import Testing
@testable import VLMRPC

@Suite struct FrameDecoderTests {
    let bodies = [
        #"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        #"{"jsonrpc":"2.0","method":"note","params":{"text":"héllo wörld — 日本語 🙂"}}"#,
        "",
        #"{"x":"\#(String(repeating: "é", count: 300))"}"#,
    ].map { Data($0.utf8) }

    func stream(_ bodies: [Data]) -> Data {
        bodies.reduce(into: Data()) { $0.append(frame($1)) }
    }

    @Test func wholeStreamDecodesEveryMessage() {
        var decoder = FrameDecoder(maxMessageBytes: 1 << 20)
        #expect(decoder.feed(stream(bodies)) == bodies.map { .message($0) })
        #expect(decoder.isAtMessageBoundary)
    }

    @Test func splitAtEveryByteBoundaryGivesTheSameMessages() {
        let all = stream(bodies)
        for split in 0...all.count {
            var decoder = FrameDecoder(maxMessageBytes: 1 << 20)
            var events = decoder.feed(all.prefix(split))
            events += decoder.feed(all.dropFirst(split))
            #expect(events == bodies.map { .message($0) }, "split at \(split)")
        }
    }

    @Test func byteAtATimeGivesTheSameMessages() {
        var decoder = FrameDecoder(maxMessageBytes: 1 << 20)
        var events: [FrameEvent] = []
        for byte in stream(bodies) { events += decoder.feed([byte]) }
        #expect(events == bodies.map { .message($0) })
    }

    @Test func contentLengthCountsBytesNotCharacters() {
        let body = Data(#"{"t":"🙂é"}"#.utf8)  // 10 characters, 14 bytes
        #expect(String(data: frame(body), encoding: .utf8)!.hasPrefix("Content-Length: 14\r\n\r\n"))
        var decoder = FrameDecoder(maxMessageBytes: 100)
        #expect(decoder.feed(frame(body)) == [.message(body)])
    }

    @Test func otherHeadersAreAcceptedAndCaseIsIgnored() {
        let raw = Data("content-length: 2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\nX-Other: 1\r\n\r\n{}".utf8)
        var decoder = FrameDecoder(maxMessageBytes: 100)
        #expect(decoder.feed(raw) == [.message(Data("{}".utf8))])
    }

    @Test func missingContentLengthIsReportedAndTheNextMessageStillDecodes() {
        let raw = Data("Content-Type: application/json\r\n\r\n".utf8) + frame(Data("{}".utf8))
        var decoder = FrameDecoder(maxMessageBytes: 100)
        let events = decoder.feed(raw)
        #expect(events.count == 2)
        guard case .badHeader(let reason) = events[0] else { Issue.record("expected badHeader"); return }
        #expect(reason.contains("missing Content-Length"))
        #expect(events[1] == .message(Data("{}".utf8)))
    }

    @Test(arguments: ["-5", "abc", "12x", "99999999999999999999999", "", "1.5", "٣"])
    func invalidContentLengthIsReported(value: String) {
        var decoder = FrameDecoder(maxMessageBytes: 100)
        let events = decoder.feed(Data("Content-Length: \(value)\r\n\r\n".utf8) + frame(Data("[]".utf8)))
        guard case .badHeader = events.first else { Issue.record("expected badHeader, got \(events)"); return }
        #expect(events.last == .message(Data("[]".utf8)))
    }

    @Test func headerLineWithoutColonIsReported() {
        var decoder = FrameDecoder(maxMessageBytes: 100)
        let events = decoder.feed(Data("garbage\r\n\r\n".utf8))
        guard case .badHeader(let reason) = events.first else { Issue.record("expected badHeader"); return }
        #expect(reason.contains("garbage"))
    }

    @Test func oversizeBodyIsSkippedWithoutBufferingAndDecodingContinues() {
        let big = Data(repeating: UInt8(ascii: "a"), count: 5000)
        var decoder = FrameDecoder(maxMessageBytes: 1000)
        var events: [FrameEvent] = []
        // Feed in small chunks: the decoder must count the body off, not collect it.
        let all = frame(big) + frame(Data("{}".utf8))
        var index = 0
        while index < all.count {
            events += decoder.feed(all[index..<min(index + 97, all.count)])
            index += 97
        }
        #expect(events == [.oversize(length: 5000, limit: 1000), .message(Data("{}".utf8))])
    }

    @Test func hugeAnnouncedLengthDoesNotAllocate() {
        var decoder = FrameDecoder(maxMessageBytes: 1000)
        let events = decoder.feed(Data("Content-Length: 999999999999999999\r\n\r\n".utf8))
        #expect(events == [.oversize(length: 999_999_999_999_999_999, limit: 1000)])
        #expect(!decoder.isAtMessageBoundary)
    }

    @Test func overlongHeaderIsReportedAndDecodingResynchronises() {
        var decoder = FrameDecoder(maxMessageBytes: 1000, maxHeaderBytes: 64)
        let junk = Data(String(repeating: "x", count: 500).utf8) + Data("\r\n\r\n".utf8)
        let events = decoder.feed(junk + frame(Data("{}".utf8)))
        #expect(events.count == 2)
        guard case .badHeader = events.first else { Issue.record("expected badHeader"); return }
        #expect(events.last == .message(Data("{}".utf8)))
    }

    @Test func partialMessageIsNotAtABoundary() {
        var decoder = FrameDecoder(maxMessageBytes: 1000)
        _ = decoder.feed(Data("Content-Length: 10\r\n\r\n{}".utf8))
        #expect(!decoder.isAtMessageBoundary)
    }
}

/// A header refused after its Content-Length was read still has its body consumed.
@Suite struct RefusedHeaderTests {
    let body = Data(#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#.utf8)
    let next = Data("{}".utf8)

    func decode(_ header: String, maxHeaderBytes: Int = 8192) -> [FrameEvent] {
        var decoder = FrameDecoder(maxMessageBytes: 1 << 20, maxHeaderBytes: maxHeaderBytes)
        return decoder.feed(Data(header.utf8) + body + frame(next))
    }

    @Test(arguments: [
        "Content-Length: 40\r\nContent-Length: 40\r\n\r\n",
        "Content-Length: 40\r\nContent-Type: application/json; charset=latin1\r\n\r\n",
        "Content-Length: 40\n\n",
        "Content-Length: 40\r\nX-Pad: \(String(repeating: "p", count: 9000))\r\n\r\n",
        "Content-Length: 40\r\nX-Name: café\r\n\r\n",
    ])
    func bodyIsSkippedAndTheNextMessageDecodes(header: String) {
        let events = decode(header)
        #expect(events.count == 2, "\(events)")
        guard case .badHeader(let reason) = events.first else { Issue.record("expected badHeader, got \(events)"); return }
        #expect(reason.contains("skipped"))
        #expect(events.last == .message(next))
    }

    @Test func leadingBlankLinesAreIgnored() {
        var decoder = FrameDecoder(maxMessageBytes: 100)
        #expect(decoder.feed(Data("\r\n\n".utf8) + frame(next)) == [.message(next)])
    }

    @Test func junkRunningIntoTheNextHeaderDoesNotLoseThatMessage() {
        var decoder = FrameDecoder(maxMessageBytes: 100)
        let events = decoder.feed(Data("X-Only: 1\r\n\r\n{\"a\":1}".utf8) + frame(next))
        #expect(events.count == 2)
        #expect(events.last == .message(next))
    }
}
