// The stage parser on well-formed, skipped, repeated, mangled and truncated tags.
import Testing
@testable import VLMReasoning

@Suite struct StageParserTests {
    let parser = StageParser(tags: ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"])

    @Test func wellFormedOutput() {
        let parsed = parser.parse("<SUMMARY>plan</SUMMARY>\n<CAPTION>a cat</CAPTION><REASONING>it purrs.</REASONING><CONCLUSION>cat</CONCLUSION>")
        #expect(parsed.contents == ["SUMMARY": "plan", "CAPTION": "a cat", "REASONING": "it purrs.", "CONCLUSION": "cat"])
        #expect(parsed.preamble.isEmpty && parsed.repeated.isEmpty && parsed.unattributed.isEmpty)
    }

    @Test func mangledSpellings() {
        let parsed = parser.parse("< summary >a</ Summary>\n[CAPTION] b [/CAPTION] <Reasoning:>c</REASONING > <conclusion>d")
        #expect(parsed.contents == ["SUMMARY": "a", "CAPTION": "b", "REASONING": "c", "CONCLUSION": "d"])
    }

    @Test func skippedClosingAndOpeningTags() {
        let noClose = parser.parse("<SUMMARY>a<CAPTION>b<CONCLUSION>d")
        #expect(noClose.contents == ["SUMMARY": "a", "CAPTION": "b", "CONCLUSION": "d"])
        #expect(noClose.contents["REASONING"] == nil)
        let noOpen = parser.parse("a</SUMMARY><CAPTION>b</CAPTION>")
        #expect(noOpen.contents == ["SUMMARY": "a", "CAPTION": "b"])
        let wrongClose = parser.parse("<SUMMARY>a</CAPTION> then</CONCLUSION>")
        #expect(wrongClose.contents == ["SUMMARY": "a", "CONCLUSION": "then"])
    }

    @Test func repeatedTagsKeepTheFirstNonEmptyContent() {
        let parsed = parser.parse("<SUMMARY></SUMMARY><SUMMARY>first</SUMMARY><SUMMARY>second</SUMMARY>x</SUMMARY>")
        #expect(parsed.contents["SUMMARY"] == "first")
        #expect(parsed.repeated == ["SUMMARY"])
    }

    @Test func truncatedMarkersAtTheEnd() {
        #expect(parser.parse("<CONCLUSION>yes</CONC").contents["CONCLUSION"] == "yes")
        #expect(parser.parse("<CONCLUSION>yes <").contents["CONCLUSION"] == "yes")
        #expect(parser.parse("<CONCLUSION>yes [/concl").contents["CONCLUSION"] == "yes")
        // Not a prefix of a known tag: ordinary text.
        #expect(parser.parse("<CONCLUSION>3 < x").contents["CONCLUSION"] == "3 < x")
    }

    @Test func textOutsideStagesAndUnknownTags() {
        let parsed = parser.parse("Sure! Here it is: <SUMMARY>a <b>bold</b> 3 < 4</SUMMARY> junk <CAPTION>b")
        #expect(parsed.preamble == "Sure! Here it is:")
        #expect(parsed.unattributed == ["junk"])
        #expect(parsed.contents == ["SUMMARY": "a <b>bold</b> 3 < 4", "CAPTION": "b"])
    }

    @Test func emptyAndTaglessAndUnicodeText() {
        #expect(parser.parse("").contents.isEmpty)
        let tagless = parser.parse("just words")
        #expect(tagless.contents.isEmpty && tagless.preamble == "just words")
        #expect(parser.parse("<SUMMARY>猫 🐱 naïve</SUMMARY>").contents["SUMMARY"] == "猫 🐱 naïve")
        // Doubled brackets: the inner marker is found, the stray brackets stay as text.
        let doubled = parser.parse("<<SUMMARY>>x<</SUMMARY>>")
        #expect(doubled.contents["SUMMARY"] == ">x<")
        #expect(doubled.preamble == "<" && doubled.unattributed == [">"])
    }

    @Test func stageContentStopsAtAnyMarker() {
        #expect(parser.stageContent(" The cat.</ summary> more") == ("The cat.", true))
        #expect(parser.stageContent("a [CAPTION] b") == ("a", true))
        #expect(parser.stageContent(" abc ") == ("abc", false))
        #expect(parser.stageContent("abc </REAS") == ("abc", false))
        #expect(parser.stopStrings.contains("</SUMMARY>") && parser.stopStrings.contains("<CONCLUSION>"))
    }

    @Test func stepEndings() {
        #expect(StepBoundary.ending(kept: "It is red", raw: "It is red. The", otherStops: []) == .sentence("."))
        #expect(StepBoundary.ending(kept: "Why", raw: "Why? ", otherStops: []) == .sentence("?"))
        #expect(StepBoundary.ending(kept: "A line", raw: "A line\nnext", otherStops: []) == .line)
        #expect(StepBoundary.ending(kept: "done", raw: "done</REASONING>", otherStops: ["</REASONING>"]) == .other)
        // The first stop in the text is the one generation stopped at.
        #expect(StepBoundary.ending(kept: "a", raw: "a\n. ", otherStops: []) == .line)
    }
}
