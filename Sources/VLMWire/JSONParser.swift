import Foundation

/// Parses message bodies into `JSONValue` without recursion, in time linear in the body's size.
///
/// Why not Foundation's parser: it recurses once per nesting level and traps (SIGILL) a little past
/// 512 levels, so a 513-byte body of `[` took the daemon down; and decoding deep bodies into
/// `JSONValue` through `Decodable` costs time quadratic in depth. Here nesting lives in an explicit
/// stack bounded by `maxDepth`, and a body over it is refused before anything deeper is built.
public struct JSONParser {
    /// Deepest nesting of arrays and objects accepted in a message (advertised in `initialize`).
    public static let defaultMaxDepth = 64

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let message: String
        public let offset: Int
        public var description: String { "\(message) at byte \(offset)" }
    }

    /// A parsed body and, for a top-level object, the literal text of its `"id"` when it was a
    /// number, so a reply can echo the id exactly as sent (`2.0` stays `2.0`).
    public struct Parsed: Sendable {
        public let value: JSONValue
        public let rawNumericID: String?
        /// Where the body first nested deeper than allowed. Such a part is skipped (it reads as
        /// `null`) so the rest, and the request's id, can still be read for the error reply.
        public let depthExceededAt: Int?
    }

    public static func parse(_ data: Data, maxDepth: Int = defaultMaxDepth) throws(Failure) -> Parsed {
        let outcome = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Result<Parsed, Failure> in
            var parser = JSONParser(bytes: raw.bindMemory(to: UInt8.self), maxDepth: maxDepth)
            do throws(Failure) { return .success(try parser.parseDocument()) } catch { return .failure(error) }
        }
        return try outcome.get()
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let maxDepth: Int
    private var position = 0
    private var rawNumericID: String?
    private var depthExceededAt: Int?

    private init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    /// An array or object being filled; `key` is the member name awaiting its value. A class, so
    /// appending never copies the elements gathered so far.
    private final class Container {
        let isArray: Bool
        var elements: [JSONValue] = []
        var members: [String: JSONValue] = [:]
        var key: String?

        init(isArray: Bool) { self.isArray = isArray }

        func add(_ value: JSONValue) {
            if isArray { elements.append(value) } else if let key, members[key] == nil { members[key] = value }  // first wins
            key = nil
        }

        var value: JSONValue { isArray ? .array(elements) : .object(members) }
    }

    private mutating func parseDocument() throws(Failure) -> Parsed {
        var stack: [Container] = []
        var finished: JSONValue?
        while finished == nil {
            skipWhitespace()
            var value: JSONValue
            let byte = try peek("a value")
            switch byte {
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                position += 1
                if stack.count >= maxDepth {
                    depthExceededAt = depthExceededAt ?? position - 1
                    try skipNested()
                    value = .null
                    break
                }
                let container = Container(isArray: byte == UInt8(ascii: "["))
                skipWhitespace()
                let close = container.isArray ? UInt8(ascii: "]") : UInt8(ascii: "}")
                if try peek("a value or a closing bracket") == close {
                    position += 1
                    value = container.value
                } else {
                    if !container.isArray { container.key = try parseMemberName() }
                    stack.append(container)
                    continue
                }
            case UInt8(ascii: "\""):
                value = .string(try parseString())
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let start = position
                value = try parseNumber()
                if stack.count == 1, stack[0].key == "id", stack[0].members["id"] == nil {
                    rawNumericID = String(decoding: bytes[start..<position], as: UTF8.self)
                }
            case UInt8(ascii: "t"): try expectLiteral("true"); value = .bool(true)
            case UInt8(ascii: "f"): try expectLiteral("false"); value = .bool(false)
            case UInt8(ascii: "n"): try expectLiteral("null"); value = .null
            default:
                throw Failure(message: "unexpected character '\(printable(byte))'", offset: position)
            }
            // Attach the value to its container, closing as many containers as end here.
            while true {
                guard let top = stack.last else { finished = value; break }
                top.add(value)
                skipWhitespace()
                let next = try peek("',' or a closing bracket")
                if next == UInt8(ascii: ",") {
                    position += 1
                    if !top.isArray { top.key = try parseMemberName() }
                    break
                }
                guard next == (top.isArray ? UInt8(ascii: "]") : UInt8(ascii: "}")) else {
                    throw Failure(message: "expected ',' or a closing bracket, found '\(printable(next))'", offset: position)
                }
                position += 1
                stack.removeLast()
                value = top.value
            }
        }
        skipWhitespace()
        if position != bytes.count {
            throw Failure(message: "unexpected data after the JSON value", offset: position)
        }
        return Parsed(value: finished!, rawNumericID: rawNumericID, depthExceededAt: depthExceededAt)
    }

    /// Skips the rest of an array or object whose opening bracket was just read, counting brackets
    /// outside strings instead of building anything.
    private mutating func skipNested() throws(Failure) {
        let start = position - 1
        var depth = 1
        var inString = false
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            if inString {
                if byte == UInt8(ascii: "\\") { position += 1 } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
                if depth == 0 { return }
            default: break
            }
        }
        throw Failure(message: "unexpected end of data inside a nested value", offset: start)
    }

    /// `"name" :` — a member name and its colon.
    private mutating func parseMemberName() throws(Failure) -> String {
        skipWhitespace()
        guard try peek("a member name") == UInt8(ascii: "\"") else {
            throw Failure(message: "expected a member name in double quotes", offset: position)
        }
        let name = try parseString()
        skipWhitespace()
        guard try peek("':'") == UInt8(ascii: ":") else {
            throw Failure(message: "expected ':' after a member name", offset: position)
        }
        position += 1
        return name
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private func peek(_ expected: String) throws(Failure) -> UInt8 {
        guard position < bytes.count else {
            throw Failure(message: "unexpected end of data, expected \(expected)", offset: position)
        }
        return bytes[position]
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(Failure) {
        let count = literal.utf8CodeUnitCount
        let matches = position + count <= bytes.count
            && (0..<count).allSatisfy { bytes[position + $0] == literal.utf8Start[$0] }
        guard matches else { throw Failure(message: "invalid literal", offset: position) }
        position += count
    }

    /// RFC 8259 numbers: integers that fit in 64 bits stay exact, everything else is a double.
    private mutating func parseNumber() throws(Failure) -> JSONValue {
        let start = position
        var isInteger = true
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        guard position < bytes.count, isDigit(bytes[position]) else {
            throw Failure(message: "invalid number", offset: start)
        }
        if bytes[position] == UInt8(ascii: "0") {
            position += 1
        } else {
            while position < bytes.count, isDigit(bytes[position]) { position += 1 }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            try digits(numberStart: start)
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            isInteger = false
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
            try digits(numberStart: start)
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        if isInteger, let exact = Int64(text) { return .int(exact) }
        guard let double = Double(text), double.isFinite else {
            throw Failure(message: "number \(text.prefix(40)) is out of range", offset: start)
        }
        return .double(double)
    }

    private mutating func digits(numberStart: Int) throws(Failure) {
        guard position < bytes.count, isDigit(bytes[position]) else {
            throw Failure(message: "invalid number", offset: numberStart)
        }
        while position < bytes.count, isDigit(bytes[position]) { position += 1 }
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// A string literal; the body was checked to be UTF-8 before parsing, so runs of plain bytes
    /// are copied as they are and only escapes are decoded.
    private mutating func parseString() throws(Failure) -> String {
        let start = position
        position += 1  // opening quote
        var runStart = position
        var result = ""
        while true {
            guard position < bytes.count else {
                throw Failure(message: "unterminated string", offset: start)
            }
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                result += String(decoding: bytes[runStart..<position], as: UTF8.self)
                position += 1
                return result
            }
            if byte < 0x20 {
                throw Failure(message: "control character in a string (escape it)", offset: position)
            }
            if byte == UInt8(ascii: "\\") {
                result += String(decoding: bytes[runStart..<position], as: UTF8.self)
                position += 1
                result.unicodeScalars.append(try parseEscape())
                runStart = position
                continue
            }
            position += 1
        }
    }

    private mutating func parseEscape() throws(Failure) -> Unicode.Scalar {
        let escapeStart = position - 1
        let letter = try peek("an escape")
        position += 1
        switch letter {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            let unit = try hexQuad()
            if (0xD800..<0xDC00).contains(unit) {
                // A high surrogate must be followed by an escaped low surrogate.
                guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u")
                else { throw Failure(message: "unpaired surrogate in \\u escape", offset: escapeStart) }
                position += 2
                let low = try hexQuad()
                guard (0xDC00..<0xE000).contains(low) else {
                    throw Failure(message: "unpaired surrogate in \\u escape", offset: escapeStart)
                }
                return Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))!
            }
            guard let scalar = Unicode.Scalar(unit) else {
                throw Failure(message: "unpaired surrogate in \\u escape", offset: escapeStart)
            }
            return scalar
        default:
            throw Failure(message: "invalid escape '\\\(printable(letter))'", offset: escapeStart)
        }
    }

    private mutating func hexQuad() throws(Failure) -> UInt32 {
        guard position + 4 <= bytes.count else {
            throw Failure(message: "truncated \\u escape", offset: position)
        }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw Failure(message: "invalid hex digit in \\u escape", offset: position)
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    private func printable(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? String(UnicodeScalar(byte)) : String(format: "\\x%02X", byte)
    }
}
