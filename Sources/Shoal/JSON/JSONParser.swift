// Turns the UTF-8 text of an incoming message into a JSONValue for `dataType: "object"` servers.
// Strict RFC 8259, one pass over the bytes, and iterative (an explicit stack of open containers)
// so a hostile `[[[[...` cannot overflow the thread stack; nesting is capped at 512 levels.

/// Why some text is not valid JSON, and where.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong, e.g. "expected ':' after object key".
    public var message: String
    /// Zero-based byte offset into the UTF-8 input where the problem was found.
    public var offset: Int

    /// Creates an error with a message and the byte offset it refers to.
    public init(message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }

    /// "invalid JSON at byte 7: expected ':' after object key".
    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}

/// Parses JSON text (RFC 8259) into a ``JSONValue``.
///
/// Any value is accepted at the top level, surrounded by optional whitespace; anything after
/// it is an error. Strings must be valid UTF-8 with control characters escaped, `\u` escapes
/// must pair surrogates correctly, and numbers must follow the JSON grammar. Integers that fit
/// in `Int64` become `.integer`; other numbers become `.double`, and a number too large for a
/// `Double` is an error rather than infinity, which JSON cannot represent.
public enum JSONParser {
    /// The deepest nesting of arrays and objects accepted. Deep enough for any real message,
    /// shallow enough that recursive code walking the result (equality, hashing, serializing,
    /// deallocation) stays far from the stack limit.
    public static let maximumDepth = 512

    /// Parses UTF-8 encoded JSON text.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONParseError) -> JSONValue {
        var reader = JSONReader(bytes)
        return try reader.readDocument()
    }

    /// Parses JSON text.
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        var text = text
        // `withUTF8` is `rethrows`, which erases the typed error; carry it out in a `Result`.
        let result = text.withUTF8 { utf8 in
            Result { () throws(JSONParseError) -> JSONValue in try parse(UnsafeRawBufferPointer(utf8)) }
        }
        return try result.get()
    }
}

// ASCII bytes the grammar cares about.
private let quote = UInt8(ascii: "\"")
private let backslash = UInt8(ascii: "\\")
private let zero = UInt8(ascii: "0")
private let nine = UInt8(ascii: "9")
private let minus = UInt8(ascii: "-")
private let plus = UInt8(ascii: "+")

/// An array or object that has been opened but not yet closed. Its elements wait in the
/// reader's shared `pendingValues` / `pendingKeys` buffers from these offsets on, so each
/// container is allocated once, at its final size, when it closes.
private struct OpenContainer {
    let isObject: Bool
    let valuesStart: Int
    let keysStart: Int
}

/// The cursor over the input; one instance per document.
private struct JSONReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0
    /// Reused buffer for strings that contain escapes.
    var scratch: [UInt8] = []
    /// Elements and member values of all open containers, innermost last.
    var pendingValues: [JSONValue] = []
    /// Member keys of all open objects, innermost last; parallel to their values.
    var pendingKeys: [String] = []

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    // MARK: Structure

    /// Reads one value and requires nothing but whitespace after it.
    ///
    /// The loop alternates two phases: read the start of a value (a scalar completes it, a
    /// bracket pushes a container), then hand a completed value to the innermost container,
    /// which either asks for another value (after `,`) or closes and becomes the completed value.
    mutating func readDocument() throws(JSONParseError) -> JSONValue {
        var stack: [OpenContainer] = []
        skipWhitespace()
        readValue: while true {
            guard position < bytes.count else {
                throw fail("unexpected end of input, expected a value")
            }
            var value: JSONValue
            switch bytes[position] {
            case UInt8(ascii: "{"):
                guard stack.count < JSONParser.maximumDepth else {
                    throw fail("nesting deeper than \(JSONParser.maximumDepth) levels")
                }
                position += 1
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                    position += 1
                    value = .object(JSONObject())
                } else {
                    stack.append(openContainer(isObject: true))
                    pendingKeys.append(try readKey())
                    continue readValue
                }
            case UInt8(ascii: "["):
                guard stack.count < JSONParser.maximumDepth else {
                    throw fail("nesting deeper than \(JSONParser.maximumDepth) levels")
                }
                position += 1
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                    position += 1
                    value = .array([])
                } else {
                    stack.append(openContainer(isObject: false))
                    continue readValue
                }
            case quote:
                value = .string(try readString())
            case UInt8(ascii: "t"):
                try readLiteral("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try readLiteral("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try readLiteral("null")
                value = .null
            case minus, zero...nine:
                value = try readNumber()
            case let byte:
                throw fail("unexpected \(describe(byte)), expected a value")
            }

            // `value` is complete: attach it, closing containers until one wants another value.
            while let container = stack.last {
                pendingValues.append(value)
                skipWhitespace()
                let next: UInt8? = position < bytes.count ? bytes[position] : nil
                if container.isObject {
                    switch next {
                    case UInt8(ascii: ","):
                        position += 1
                        skipWhitespace()
                        pendingKeys.append(try readKey())
                        continue readValue
                    case UInt8(ascii: "}"):
                        position += 1
                        stack.removeLast()
                        value = .object(closeObject(container))
                    default:
                        throw fail(expected: "',' or '}' after object member", found: next)
                    }
                } else {
                    switch next {
                    case UInt8(ascii: ","):
                        position += 1
                        skipWhitespace()
                        continue readValue
                    case UInt8(ascii: "]"):
                        position += 1
                        stack.removeLast()
                        value = .array(Array(pendingValues[container.valuesStart...]))
                        pendingValues.removeSubrange(container.valuesStart...)
                    default:
                        throw fail(expected: "',' or ']' after array element", found: next)
                    }
                }
            }
            skipWhitespace()
            guard position == bytes.count else {
                throw fail("unexpected data after the JSON value")
            }
            return value
        }
    }

    /// A container whose elements will collect from the current ends of the pending buffers.
    func openContainer(isObject: Bool) -> OpenContainer {
        OpenContainer(isObject: isObject, valuesStart: pendingValues.count, keysStart: pendingKeys.count)
    }

    /// Builds the object whose members are pending from `container`'s offsets, and drops them.
    mutating func closeObject(_ container: OpenContainer) -> JSONObject {
        let count = pendingKeys.count - container.keysStart
        var object = JSONObject(minimumCapacity: count)
        for index in 0..<count {
            let key = pendingKeys[container.keysStart + index]
            object.updateValue(pendingValues[container.valuesStart + index], forKey: key)
        }
        pendingValues.removeSubrange(container.valuesStart...)
        pendingKeys.removeSubrange(container.keysStart...)
        return object
    }

    /// Reads `"key"` and the `:` after it, leaving the cursor at the member's value.
    mutating func readKey() throws(JSONParseError) -> String {
        guard position < bytes.count, bytes[position] == quote else {
            throw fail(expected: "a string key", found: position < bytes.count ? bytes[position] : nil)
        }
        let key = try readString()
        skipWhitespace()
        guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else {
            throw fail(expected: "':' after object key", found: position < bytes.count ? bytes[position] : nil)
        }
        position += 1
        skipWhitespace()
        return key
    }

    mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                position += 1
            default:
                return
            }
        }
    }

    /// Reads `true`, `false` or `null`; the first letter has already been matched.
    mutating func readLiteral(_ word: StaticString) throws(JSONParseError) {
        let length = word.utf8CodeUnitCount
        let matches = position + length <= bytes.count
            && (0..<length).allSatisfy { bytes[position + $0] == word.utf8Start[$0] }
        guard matches else {
            throw fail("invalid literal, expected '\(word)'")
        }
        position += length
    }

    // MARK: Numbers

    /// Reads a number per the JSON grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    mutating func readNumber() throws(JSONParseError) -> JSONValue {
        let start = position
        let negative = bytes[position] == minus
        if negative {
            position += 1
        }
        guard position < bytes.count, isDigit(bytes[position]) else {
            throw fail("expected a digit after '-'")
        }
        // Accumulate the integer part on the way, so plain integers need no second pass.
        var magnitude: UInt64 = 0
        var overflowed = false
        if bytes[position] == zero {
            position += 1
            if position < bytes.count, isDigit(bytes[position]) {
                throw fail("numbers cannot have leading zeros", at: start)
            }
        } else {
            while position < bytes.count, isDigit(bytes[position]) {
                let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(bytes[position] &- zero))
                magnitude = sum
                overflowed = overflowed || o1 || o2
                position += 1
            }
        }
        var isInteger = true
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            guard position < bytes.count, isDigit(bytes[position]) else {
                throw fail("expected a digit after the decimal point")
            }
            skipDigits()
        }
        if position < bytes.count, bytes[position] | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            position += 1
            if position < bytes.count, bytes[position] == plus || bytes[position] == minus {
                position += 1
            }
            guard position < bytes.count, isDigit(bytes[position]) else {
                throw fail("expected a digit in the exponent")
            }
            skipDigits()
        }

        if isInteger, !overflowed {
            if !negative, magnitude <= UInt64(Int64.max) {
                return .integer(Int64(magnitude))
            }
            // -0 stays a double so it keeps its sign, as in JavaScript.
            if negative, magnitude != 0, magnitude <= UInt64(Int64.max) + 1 {
                return .integer(Int64(truncatingIfNeeded: 0 &- magnitude))
            }
        }
        // The text is ASCII digits and signs, so it is short-lived and usually a small string.
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard let double = Double(text), double.isFinite else {
            throw fail("number out of range", at: start)
        }
        return .double(double)
    }

    mutating func skipDigits() {
        while position < bytes.count, isDigit(bytes[position]) {
            position += 1
        }
    }

    func isDigit(_ byte: UInt8) -> Bool {
        byte >= zero && byte <= nine
    }

    // MARK: Strings

    /// Reads a string starting at its opening quote. Strings without escapes (the common case)
    /// become a `String` straight from the input; others are assembled in `scratch`.
    mutating func readString() throws(JSONParseError) -> String {
        let opening = position
        position += 1
        var runStart = position
        try skipPlainBytes(stringStart: opening)
        if bytes[position] == quote {
            position += 1
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[runStart..<position - 1]), as: UTF8.self)
        }
        scratch.removeAll(keepingCapacity: true)
        while true {
            scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<position]))
            if bytes[position] == quote {
                position += 1
                return String(decoding: scratch, as: UTF8.self)
            }
            try readEscape(stringStart: opening)
            runStart = position
            try skipPlainBytes(stringStart: opening)
        }
    }

    /// Advances over bytes that stand for themselves, stopping at `"` or `\`; validates UTF-8
    /// and rejects raw control characters on the way.
    mutating func skipPlainBytes(stringStart: Int) throws(JSONParseError) {
        while position < bytes.count {
            let byte = bytes[position]
            if byte == quote || byte == backslash {
                return
            }
            if byte < 0x20 {
                throw fail("control character \(hex(byte)) must be escaped in a string")
            }
            if byte < 0x80 {
                position += 1
            } else {
                try skipUTF8Sequence()
            }
        }
        throw fail("unterminated string", at: stringStart)
    }

    /// Validates one multi-byte UTF-8 sequence (Unicode Table 3-7: no overlongs, no surrogates,
    /// nothing above U+10FFFF) and advances past it.
    mutating func skipUTF8Sequence() throws(JSONParseError) {
        let lead = bytes[position]
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        let continuationCount: Int
        switch lead {
        case 0xC2...0xDF: continuationCount = 1
        case 0xE0: continuationCount = 2; low = 0xA0
        case 0xED: continuationCount = 2; high = 0x9F
        case 0xE1...0xEF: continuationCount = 2
        case 0xF0: continuationCount = 3; low = 0x90
        case 0xF4: continuationCount = 3; high = 0x8F
        case 0xF1...0xF3: continuationCount = 3
        default: throw fail("invalid UTF-8")
        }
        guard position + continuationCount < bytes.count else {
            throw fail("invalid UTF-8")
        }
        let second = bytes[position + 1]
        guard second >= low, second <= high else {
            throw fail("invalid UTF-8")
        }
        for index in stride(from: position + 2, through: position + continuationCount, by: 1) {
            guard bytes[index] & 0xC0 == 0x80 else {
                throw fail("invalid UTF-8")
            }
        }
        position += continuationCount + 1
    }

    /// Decodes the escape at the cursor (a backslash) into `scratch`.
    mutating func readEscape(stringStart: Int) throws(JSONParseError) {
        guard position + 1 < bytes.count else {
            throw fail("unterminated string", at: stringStart)
        }
        let escaped: UInt8
        switch bytes[position + 1] {
        case quote: escaped = quote
        case backslash: escaped = backslash
        case UInt8(ascii: "/"): escaped = UInt8(ascii: "/")
        case UInt8(ascii: "b"): escaped = 0x08
        case UInt8(ascii: "f"): escaped = 0x0C
        case UInt8(ascii: "n"): escaped = 0x0A
        case UInt8(ascii: "r"): escaped = 0x0D
        case UInt8(ascii: "t"): escaped = 0x09
        case UInt8(ascii: "u"):
            try readUnicodeEscape()
            return
        case let other:
            throw fail("invalid escape '\\\(printable(other))' in string")
        }
        scratch.append(escaped)
        position += 2
    }

    /// Decodes `\uXXXX`, or a `\uD8xx\uDCxx` surrogate pair, into UTF-8 in `scratch`.
    mutating func readUnicodeEscape() throws(JSONParseError) {
        let escapeStart = position
        let first = try readHex4(at: position + 2)
        position += 6
        var scalar = first
        switch first {
        case 0xD800...0xDBFF:
            guard position + 1 < bytes.count, bytes[position] == backslash, bytes[position + 1] == UInt8(ascii: "u")
            else {
                throw fail("unpaired surrogate \(escapeText(at: escapeStart)) in string", at: escapeStart)
            }
            let second = try readHex4(at: position + 2)
            guard (0xDC00...0xDFFF).contains(second) else {
                throw fail("unpaired surrogate \(escapeText(at: escapeStart)) in string", at: escapeStart)
            }
            position += 6
            scalar = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        case 0xDC00...0xDFFF:
            throw fail("unpaired surrogate \(escapeText(at: escapeStart)) in string", at: escapeStart)
        default:
            break
        }
        appendUTF8(scalar)
    }

    /// The four hex digits at `offset` as a number; the escape's backslash is at `offset - 2`.
    func readHex4(at offset: Int) throws(JSONParseError) -> UInt32 {
        guard offset + 4 <= bytes.count else {
            throw fail("'\\u' must be followed by 4 hex digits", at: offset - 2)
        }
        var value: UInt32 = 0
        for index in offset..<offset + 4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case zero...nine: digit = byte - zero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail("'\\u' must be followed by 4 hex digits", at: offset - 2)
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    mutating func appendUTF8(_ scalar: UInt32) {
        switch scalar {
        case ..<0x80:
            scratch.append(UInt8(scalar))
        case ..<0x800:
            scratch.append(0xC0 | UInt8(scalar >> 6))
            scratch.append(0x80 | UInt8(scalar & 0x3F))
        case ..<0x10000:
            scratch.append(0xE0 | UInt8(scalar >> 12))
            scratch.append(0x80 | UInt8(scalar >> 6 & 0x3F))
            scratch.append(0x80 | UInt8(scalar & 0x3F))
        default:
            scratch.append(0xF0 | UInt8(scalar >> 18))
            scratch.append(0x80 | UInt8(scalar >> 12 & 0x3F))
            scratch.append(0x80 | UInt8(scalar >> 6 & 0x3F))
            scratch.append(0x80 | UInt8(scalar & 0x3F))
        }
    }

    // MARK: Errors

    func fail(_ message: String, at offset: Int? = nil) -> JSONParseError {
        JSONParseError(message: message, offset: offset ?? position)
    }

    /// "expected X, found Y" at the cursor, or "unexpected end of input, expected X" at the end.
    func fail(expected: String, found: UInt8?) -> JSONParseError {
        guard let found else {
            return fail("unexpected end of input, expected \(expected)")
        }
        return fail("expected \(expected), found \(describe(found))")
    }

    /// The six characters of the `\u` escape at `offset`, for messages.
    func escapeText(at offset: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 6]), as: UTF8.self)
    }

    /// "character 'x'" for printable ASCII, "byte 0x1F" otherwise.
    func describe(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "character '\(printable(byte))'" : "byte \(hex(byte))"
    }

    func printable(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? String(UnicodeScalar(byte)) : hex(byte)
    }

    func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16, uppercase: true)
        return byte < 0x10 ? "0x0" + digits : "0x" + digits
    }
}
