import Foundation
import Testing
@testable import VLMRPC

@Suite struct LineDecoderTests {
    private func feed(_ decoder: inout LineDecoder, _ text: String) -> [FrameEvent] {
        Array(text.utf8).withUnsafeBytes { decoder.feed($0) }
    }

    @Test func splitsLinesAcrossReadsAndDropsCRAndBlankLines() {
        var decoder = LineDecoder(maxMessageBytes: 1024)
        #expect(feed(&decoder, "{\"a\":1}\r\n\n  \n{\"b\"") == [.message(Data("{\"a\":1}".utf8))])
        #expect(feed(&decoder, ":2}\n") == [.message(Data("{\"b\":2}".utf8))])
    }

    @Test func firstLineOfAChunkIsReported() {
        var decoder = LineDecoder(maxMessageBytes: 1024)
        #expect(feed(&decoder, "{\"a\":1}\r\n\n{\"c\":3}\n") == [.message(Data("{\"a\":1}".utf8)), .message(Data("{\"c\":3}".utf8))])
    }

    @Test func overlongLineIsSkippedAndCountedNotBuffered() {
        var decoder = LineDecoder(maxMessageBytes: 8)
        #expect(feed(&decoder, "0123456").isEmpty)
        #expect(feed(&decoder, "789abc").isEmpty)
        #expect(feed(&decoder, "def\n{}\n") == [.oversize(length: 16, limit: 8), .message(Data("{}".utf8))])
    }

    @Test func lastLineWithoutNewlineCountsAtEndOfInput() {
        var decoder = LineDecoder(maxMessageBytes: 64)
        #expect(feed(&decoder, "{}\n[1]").count == 1)
        #expect(decoder.finish() == [.message(Data("[1]".utf8))])
        #expect(decoder.finish().isEmpty)
    }

    @Test func lineFrameEndsTheBodyWithOneNewline() {
        #expect(lineFrame(Data("{}".utf8)) == Data("{}\n".utf8))
    }
}
