import Foundation

/// The text normalisation open_clip's SimpleTokenizer applies before splitting (`_clean_lower`):
///
///     whitespace_clean(basic_clean(text)).lower()
///     basic_clean(text) = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
///
/// `ftfy.fix_text` is approximated by the steps of it that apply to well-formed Unicode input:
/// one extra round of semicolon-terminated entity decoding when the text has no '<' (ftfy's
/// "auto" HTML mode, including its all-caps names such as &EACUTE;), ANSI terminal escapes removed, Latin ligatures expanded (ﬁ → fi), halfwidth
/// and fullwidth forms folded (ＡＢＣ → ABC, U+3000 → space), curly quotes straightened, ftfy's
/// control characters removed, and NFC normalisation. Not reproduced: ftfy's mojibake repair
/// (text that was decoded with the wrong encoding, e.g. "cafÃ©"), which needs its statistical
/// detector, and HTML entities outside the table in HTMLEntities.swift.
enum TextCleaning {
    static func clean(_ text: String) -> String {
        var s = fixText(text)
        s = htmlUnescape(htmlUnescape(s))
        s = collapseWhitespace(s)
        return pythonLowercase(s)
    }

    // MARK: ftfy.fix_text (approximation)

    static func fixText(_ text: String) -> String {
        var s = text
        if !s.contains("<") { s = htmlUnescape(s, requireSemicolon: true) }
        s = removeTerminalEscapes(s)
        var scalars = String.UnicodeScalarView()
        for scalar in s.unicodeScalars {
            let v = scalar.value
            if let ligature = latinLigatures[v] { scalars.append(contentsOf: ligature.unicodeScalars); continue }
            if v == 0x3000 { scalars.append(" "); continue }
            if (0xFF01...0xFFEF).contains(v) {
                // fullwidth ASCII / halfwidth katakana and hangul → their compatibility (NFKC) form
                let folded = String(scalar).precomposedStringWithCompatibilityMapping
                scalars.append(contentsOf: folded.unicodeScalars)
                continue
            }
            if v == 0x02BC || (0x2018...0x201B).contains(v) { scalars.append("'"); continue }
            if (0x201C...0x201F).contains(v) { scalars.append("\""); continue }
            if isFtfyControl(v) { continue }
            scalars.append(scalar)
        }
        return String(scalars).precomposedStringWithCanonicalMapping
    }

    static let latinLigatures: [UInt32: String] = [
        0x0132: "IJ", 0x0133: "ij", 0x0149: "\u{2BC}n", 0x01F1: "DZ", 0x01F2: "Dz", 0x01F3: "dz",
        0x01C4: "D\u{17D}", 0x01C5: "D\u{17E}", 0x01C6: "d\u{17E}", 0x01C7: "LJ", 0x01C8: "Lj", 0x01C9: "lj",
        0x01CA: "NJ", 0x01CB: "Nj", 0x01CC: "nj", 0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi",
        0xFB04: "ffl", 0xFB05: "\u{17F}t", 0xFB06: "st",
    ]

    /// ftfy's remove_control_chars set: C0 controls except whitespace, DEL, deprecated Arabic format
    /// controls, BOM, interlinear annotation and object replacement characters.
    static func isFtfyControl(_ v: UInt32) -> Bool {
        (v <= 0x08) || v == 0x0B || (0x0E...0x1F).contains(v) || v == 0x7F || (0x206A...0x206F).contains(v)
            || v == 0xFEFF || (0xFFF9...0xFFFC).contains(v)
    }

    /// Removes ESC [ (digits or ;)* letter sequences.
    static func removeTerminalEscapes(_ text: String) -> String {
        guard text.unicodeScalars.contains("\u{1B}") else { return text }
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if scalars[i] == "\u{1B}", i + 1 < scalars.count, scalars[i + 1] == "[" {
                var j = i + 2
                while j < scalars.count, scalars[j] == ";" || ("0"..."9").contains(scalars[j]) { j += 1 }
                if j < scalars.count, scalars[j].isASCII, scalars[j].properties.isAlphabetic { i = j + 1; continue }
            }
            out.append(scalars[i])
            i += 1
        }
        return String(out)
    }

    // MARK: html.unescape

    /// Python's html.unescape: `&#123;`, `&#x7B;` and named references (semicolons optional where
    /// Python allows), with Python's replacements for invalid code points.
    static func htmlUnescape(_ text: String, requireSemicolon: Bool = false) -> String {
        guard text.unicodeScalars.contains("&") else { return text }
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if scalars[i] == "&", let (replacement, length) = reference(in: scalars, at: i + 1, requireSemicolon: requireSemicolon) {
                out.append(contentsOf: replacement.unicodeScalars)
                i += 1 + length
            } else {
                out.append(scalars[i])
                i += 1
            }
        }
        return String(out)
    }

    /// Decodes the reference after an '&' at `start`; returns the replacement and the scalars consumed.
    private static func reference(in s: [Unicode.Scalar], at start: Int, requireSemicolon: Bool) -> (String, Int)? {
        guard start < s.count else { return nil }
        if s[start] == "#" {
            let hex = start + 1 < s.count && (s[start + 1] == "x" || s[start + 1] == "X")
            var j = start + (hex ? 2 : 1)
            let digitsStart = j
            var value: UInt64 = 0
            while j < s.count, let digit = Int(String(s[j]), radix: hex ? 16 : 10), s[j].isASCII {
                value = min(value &* (hex ? 16 : 10) &+ UInt64(digit), 0x7FFF_FFFF)  // saturate: anything huge is invalid
                j += 1
            }
            guard j > digitsStart else { return nil }
            let hasSemicolon = j < s.count && s[j] == ";"
            if requireSemicolon && !hasSemicolon { return nil }
            return (numericReplacement(UInt32(value)), j - start + (hasSemicolon ? 1 : 0))
        }
        // Python's pattern: 1–32 characters other than \t \n \f space < & # ;, then an optional ';'.
        var j = start
        while j < s.count, j - start < 32, !"\t\n\u{0C} <&#;".unicodeScalars.contains(s[j]) { j += 1 }
        guard j > start else { return nil }
        let name = String(String.UnicodeScalarView(s[start..<j]))
        let hasSemicolon = j < s.count && s[j] == ";"
        if hasSemicolon, let value = htmlEntities[name + ";"] ?? htmlEntities[name] { return (value, j - start + 1) }
        if requireSemicolon {
            // ftfy also reads all-caps names as the capital letter: &EACUTE; → É, &SZLIG; → SS.
            let lower = name.lowercased()
            guard hasSemicolon, name == name.uppercased(), lower != name,
                  let value = htmlEntities[lower + ";"] ?? htmlEntities[lower] else { return nil }
            return (value.uppercased(), j - start + 1)
        }
        if !hasSemicolon, let value = htmlEntities[name] { return (value, j - start) }
        // Longest legacy (semicolon-free) name that prefixes the run, as Python does: "&ampx" → "&x".
        let nameScalars = Array(name.unicodeScalars)
        var length = nameScalars.count - (hasSemicolon ? 0 : 1)
        while length >= 2 {
            if let value = htmlEntities[String(String.UnicodeScalarView(nameScalars[0..<length]))] { return (value, length) }
            length -= 1
        }
        return nil
    }

    private static func numericReplacement(_ v: UInt32) -> String {
        if v == 0 { return "\u{FFFD}" }
        if v == 0x0D { return "\r" }
        if (0x80...0x9F).contains(v) { return windows1252[Int(v - 0x80)] }
        if (0xD800...0xDFFF).contains(v) || v > 0x10FFFF { return "\u{FFFD}" }
        if (0x01...0x08).contains(v) || v == 0x0B || (0x0E...0x1F).contains(v) || v == 0x7F
            || (0xFDD0...0xFDEF).contains(v) || (v & 0xFFFE) == 0xFFFE { return "" }
        return String(Unicode.Scalar(v)!)
    }

    /// What browsers (and Python) substitute for the C1 range in numeric references.
    private static let windows1252: [String] = [
        "\u{20AC}", "\u{81}", "\u{201A}", "\u{192}", "\u{201E}", "\u{2026}", "\u{2020}", "\u{2021}",
        "\u{2C6}", "\u{2030}", "\u{160}", "\u{2039}", "\u{152}", "\u{8D}", "\u{17D}", "\u{8F}",
        "\u{90}", "\u{2018}", "\u{2019}", "\u{201C}", "\u{201D}", "\u{2022}", "\u{2013}", "\u{2014}",
        "\u{2DC}", "\u{2122}", "\u{161}", "\u{203A}", "\u{153}", "\u{9D}", "\u{17E}", "\u{178}",
    ]

    // MARK: whitespace and case

    /// Python's str.isspace() set, which str.split() splits on.
    static func isPythonWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// " ".join(text.split()): trims and collapses every whitespace run to one space.
    static func collapseWhitespace(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in text.unicodeScalars {
            if isPythonWhitespace(scalar) { pendingSpace = !out.isEmpty; continue }
            if pendingSpace { out.append(" "); pendingSpace = false }
            out.append(scalar)
        }
        return String(out)
    }

    /// Python's str.lower(): full Unicode lowercase mapping plus the final-sigma rule
    /// (Σ → ς at the end of a word), which Swift's lowercased() does not apply.
    static func pythonLowercase(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        for (i, scalar) in scalars.enumerated() {
            if scalar == "\u{3A3}" && isFinalSigma(scalars, at: i) { out.append("\u{3C2}"); continue }
            out.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
        }
        return String(out)
    }

    /// Unicode's Final_Sigma condition: a cased letter before (skipping case-ignorables) and none after.
    private static func isFinalSigma(_ s: [Unicode.Scalar], at index: Int) -> Bool {
        func casedNeighbour(_ indices: some Sequence<Int>) -> Bool {
            for j in indices {
                if s[j].properties.isCaseIgnorable { continue }
                return s[j].properties.isCased
            }
            return false
        }
        return casedNeighbour(stride(from: index - 1, through: 0, by: -1)) && !casedNeighbour(index + 1..<s.count)
    }
}
