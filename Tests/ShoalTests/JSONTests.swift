// Tests for the JSON value type behind `dataType: "object"`: parsing, serializing, equality,
// error messages and offsets, hostile nesting, and agreement with Foundation's JSONSerialization.

import ShoalTestSupport
import Foundation
import Testing

@testable import Shoal

// MARK: - Helpers

private func parse(_ text: String) throws(JSONParseError) -> JSONValue {
    try JSONParser.parse(text)
}

private func parse(bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
    let result = bytes.withUnsafeBytes { raw in
        Result { () throws(JSONParseError) -> JSONValue in try JSONParser.parse(raw) }
    }
    return try result.get()
}

/// The error parsing `bytes` throws, or `nil` (and a recorded issue) if it parses.
private func parseError(
    _ bytes: [UInt8],
    sourceLocation: SourceLocation = #_sourceLocation
) -> JSONParseError? {
    do {
        let value = try parse(bytes: bytes)
        Issue.record("expected an error, parsed \(value)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

private func parseError(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> JSONParseError? {
    parseError(Array(text.utf8), sourceLocation: sourceLocation)
}

/// SplitMix64: small, fast, and seeded, so a failing random case reproduces.

/// Random documents that stress escaping, number formatting and nesting.
private struct RandomJSON {
    var rng: SplitMix64
    /// Leaves out U+FEFF, which Foundation's JSONSerialization (corelibs, Linux) silently drops
    /// from strings.
    var forFoundation = false

    mutating func value(depth: Int = 0) -> JSONValue {
        let kind = Int.random(in: 0..<(depth >= 5 ? 5 : 7), using: &rng)
        switch kind {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2: return .integer(integer())
        case 3: return .double(double())
        case 4: return .string(string())
        case 5:
            return .array((0..<Int.random(in: 0...6, using: &rng)).map { _ in value(depth: depth + 1) })
        default:
            var object = JSONObject()
            for _ in 0..<Int.random(in: 0...6, using: &rng) {
                object[string()] = value(depth: depth + 1)
            }
            return .object(object)
        }
    }

    mutating func integer() -> Int64 {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return Int64.random(in: -10...10, using: &rng)
        case 1: return [Int64.min, Int64.max, Int64.min + 1, Int64.max - 1, 0][Int.random(in: 0..<5, using: &rng)]
        case 2: return Int64.random(in: -(1 << 53)...(1 << 53), using: &rng)
        default: return Int64(bitPattern: rng.next())
        }
    }

    mutating func double() -> Double {
        switch Int.random(in: 0..<5, using: &rng) {
        case 0: return Double(Int.random(in: -1000...1000, using: &rng)) / 8  // exact halves, quarters
        case 1: return Double.random(in: -1e6...1e6, using: &rng)
        case 2: return Double(Int64.random(in: -(1 << 60)...(1 << 60), using: &rng))  // integral, maybe > 2^53
        case 3:
            let special: [Double] = [0, -0.0, 1e20, 1e-7, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 0.1]
            return special[Int.random(in: 0..<special.count, using: &rng)]
        default:
            // Any finite bit pattern: subnormals, huge exponents, long mantissas.
            while true {
                let d = Double(bitPattern: rng.next())
                if d.isFinite { return d }
            }
        }
    }

    mutating func string() -> String {
        let alphabet: [Unicode.Scalar] = [
            "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\r", "\u{08}", "\u{0C}", "\u{00}", "\u{1F}",
            "\u{7F}", "é", "ß", "€", "\u{2028}", "\u{FFFD}", "\u{FEFF}", "😀", "\u{10FFFF}", "中",
        ]
        let length = Int.random(in: 0...12, using: &rng)
        var scalars = String.UnicodeScalarView()
        while scalars.count < length {
            let scalar = alphabet[Int.random(in: 0..<alphabet.count, using: &rng)]
            if forFoundation, scalar == "\u{FEFF}" { continue }
            scalars.append(scalar)
        }
        return String(scalars)
    }
}

/// Converts JSONSerialization's output into a JSONValue, to compare structures.
private func fromFoundation(_ any: Any) -> JSONValue? {
    switch any {
    case is NSNull:
        return .null
    case let string as String:
        return .string(string)
    case let array as [Any]:
        var elements: [JSONValue] = []
        for element in array {
            guard let converted = fromFoundation(element) else { return nil }
            elements.append(converted)
        }
        return .array(elements)
    case let dictionary as [String: Any]:
        var object = JSONObject()
        for (key, element) in dictionary {
            guard let converted = fromFoundation(element) else { return nil }
            object[key] = converted
        }
        return .object(object)
    case let number as NSNumber:
        // Foundation reports true/false as NSNumbers of type "c" and never uses "c" for numbers.
        switch String(cString: number.objCType) {
        case "c": return .bool(number.boolValue)
        case "d", "f": return .double(number.doubleValue)
        case "Q": return .double(Double(number.uint64Value))
        default: return .integer(number.int64Value)
        }
    default:
        return nil
    }
}

/// Structural equality with numbers compared as doubles within a few ulps: Foundation's
/// JSONSerialization reads some doubles one or two ulps off, and integers near Int64's limits
/// as doubles.
private func sameStructure(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case let (.array(x), .array(y)):
        return x.count == y.count && zip(x, y).allSatisfy { sameStructure($0, $1) }
    case let (.object(x), .object(y)):
        return x.count == y.count && x.allSatisfy { key, value in y[key].map { sameStructure(value, $0) } ?? false }
    default:
        if let p = a.doubleValue, let q = b.doubleValue {
            return p == q || abs(p - q) <= 1e-14 * max(abs(p), abs(q))
        }
        return a == b
    }
}

// MARK: - Parsing

@Test func parsesEveryKindOfValue() throws {
    let value = try parse(#" { "n": null, "t": true, "f": false, "i": -42, "d": 2.5e-3, "s": "hi", "a": [1, [], {}] }"#)
    #expect(value["n"] == .null)
    #expect(value["t"] == .bool(true))
    #expect(value["f"] == .bool(false))
    #expect(value["i"] == .integer(-42))
    #expect(value["d"] == .double(0.0025))
    #expect(value["s"] == .string("hi"))
    #expect(value["a"] == .array([.integer(1), .array([]), .object(JSONObject())]))
}

@Test func acceptsAnyValueAtTheTopLevelWithSurroundingWhitespace() throws {
    #expect(try parse("7") == 7)
    #expect(try parse(" \t\r\n\"x\" \n") == "x")
    #expect(try parse("null") == nil)
    #expect(try parse("[]") == [])
    #expect(try parse("{}") == [:])
}

@Test func integersThatFitInt64StayIntegersAndLargerOnesBecomeDoubles() throws {
    #expect(try parse("9223372036854775807") == .integer(Int64.max))
    #expect(try parse("-9223372036854775808") == .integer(Int64.min))
    guard case .double(let above) = try parse("9223372036854775808") else {
        Issue.record("Int64.max + 1 should be a double")
        return
    }
    #expect(above == 9_223_372_036_854_775_808.0)
    guard case .double(let below) = try parse("-9223372036854775809") else {
        Issue.record("Int64.min - 1 should be a double")
        return
    }
    #expect(below == -9_223_372_036_854_775_808.0)
    guard case .double(let huge) = try parse("123456789012345678901234567890") else {
        Issue.record("a 30-digit integer should be a double")
        return
    }
    #expect(huge == 1.2345678901234568e29)
}

@Test func numbersWithFractionOrExponentAreDoubles() throws {
    #expect(try parse("1.0") == .double(1))
    #expect(try parse("1e2") == .double(100))
    #expect(try parse("1E+2") == .double(100))
    #expect(try parse("-1.5e-2") == .double(-0.015))
    #expect(try parse("0.1") == .double(0.1))
    #expect(try parse("1e-400") == .double(0))
    guard case .double(let negativeZero) = try parse("-0") else {
        Issue.record("-0 should be a double")
        return
    }
    #expect(negativeZero == 0 && negativeZero.sign == .minus)
}

@Test func decodesEveryEscape() throws {
    #expect(try parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{08}\u{0C}\n\r\t"))
    #expect(try parse(#""a\u0041\u00e9\u20AC\u0000z""#) == .string("aAé€\u{0}z"))
}

@Test func decodesSurrogatePairsIntoOneCharacter() throws {
    #expect(try parse(#""\uD83D\uDE00""#) == .string("😀"))
    #expect(try parse(#""x\udbff\udfffy""#) == .string("x\u{10FFFF}y"))
}

@Test func keepsNonASCIIUTF8AsIs() throws {
    #expect(try parse("\"héllo 中文 😀\"") == .string("héllo 中文 😀"))
}

@Test func acceptsExactlyTheMaximumDepth() throws {
    let depth = JSONParser.maximumDepth
    let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
    var value = try parse(text)
    var levels = 0
    while case .array(let inner) = value {
        levels += 1
        value = inner.first ?? .null
    }
    #expect(levels == depth)
}

@Test func rejectsAHundredThousandNestedArraysWithoutCrashing() {
    let text = String(repeating: "[", count: 100_000)
    let error = parseError(text)
    #expect(error == JSONParseError(message: "nesting deeper than 512 levels", offset: 512))
}

@Test func rejectsDeeplyNestedObjectsToo() {
    let text = String(repeating: #"{"a":"#, count: 600) + "1" + String(repeating: "}", count: 600)
    #expect(parseError(text)?.message == "nesting deeper than 512 levels")
}

@Test func parsesFromARawBufferSlice() throws {
    let bytes = Array("xx[1,2]yy".utf8)
    let value = try bytes.withUnsafeBytes { raw throws(JSONParseError) in
        try JSONParser.parse(UnsafeRawBufferPointer(rebasing: raw[2..<7]))
    }
    #expect(value == [1, 2])
}

// MARK: - Parse errors

private struct ErrorCase: Sendable, CustomTestStringConvertible {
    let input: [UInt8]
    let offset: Int
    let message: String
    init(_ input: String, _ offset: Int, _ message: String) {
        self.input = Array(input.utf8)
        self.offset = offset
        self.message = message
    }
    init(bytes: [UInt8], _ offset: Int, _ message: String) {
        self.input = bytes
        self.offset = offset
        self.message = message
    }
    var testDescription: String { String(decoding: input, as: UTF8.self).debugDescription }
}

private let errorCases: [ErrorCase] = [
    // Structure.
    ErrorCase("", 0, "unexpected end of input, expected a value"),
    ErrorCase("  ", 2, "unexpected end of input, expected a value"),
    ErrorCase(#"{"a" 1}"#, 5, "expected ':' after object key, found character '1'"),
    ErrorCase(#"{"a""#, 4, "unexpected end of input, expected ':' after object key"),
    ErrorCase("[1 2]", 3, "expected ',' or ']' after array element, found character '2'"),
    ErrorCase("[1", 2, "unexpected end of input, expected ',' or ']' after array element"),
    ErrorCase(#"{"a":1 "b":2}"#, 7, "expected ',' or '}' after object member, found character '\"'"),
    ErrorCase(#"{"a":1"#, 6, "unexpected end of input, expected ',' or '}' after object member"),
    ErrorCase("{1:2}", 1, "expected a string key, found character '1'"),
    ErrorCase(#"{"a":1,}"#, 7, "expected a string key, found character '}'"),
    ErrorCase("{", 1, "unexpected end of input, expected a string key"),
    ErrorCase(#"{"a":"#, 5, "unexpected end of input, expected a value"),
    ErrorCase("[1,]", 3, "unexpected character ']', expected a value"),
    ErrorCase("[,1]", 1, "unexpected character ',', expected a value"),
    ErrorCase("1 2", 2, "unexpected data after the JSON value"),
    ErrorCase("{} x", 3, "unexpected data after the JSON value"),
    ErrorCase("\u{0C}1", 0, "unexpected byte 0x0C, expected a value"),
    ErrorCase("\u{0}", 0, "unexpected byte 0x00, expected a value"),
    ErrorCase("'a'", 0, "unexpected character ''', expected a value"),
    // Literals.
    ErrorCase("tru", 0, "invalid literal, expected 'true'"),
    ErrorCase("[nul]", 1, "invalid literal, expected 'null'"),
    ErrorCase("False", 0, "unexpected character 'F', expected a value"),
    ErrorCase("falsey", 5, "unexpected data after the JSON value"),
    // Numbers.
    ErrorCase("01", 0, "numbers cannot have leading zeros"),
    ErrorCase("-01", 0, "numbers cannot have leading zeros"),
    ErrorCase("-", 1, "expected a digit after '-'"),
    ErrorCase("-a", 1, "expected a digit after '-'"),
    ErrorCase("1.", 2, "expected a digit after the decimal point"),
    ErrorCase("1.e5", 2, "expected a digit after the decimal point"),
    ErrorCase("1e", 2, "expected a digit in the exponent"),
    ErrorCase("[1e+]", 4, "expected a digit in the exponent"),
    ErrorCase(".5", 0, "unexpected character '.', expected a value"),
    ErrorCase("+1", 0, "unexpected character '+', expected a value"),
    ErrorCase("[1e400]", 1, "number out of range"),
    ErrorCase("-1e400", 0, "number out of range"),
    // Strings.
    ErrorCase(#""abc"#, 0, "unterminated string"),
    ErrorCase(#"["a\"#, 1, "unterminated string"),
    ErrorCase(#"["a\n"#, 1, "unterminated string"),
    ErrorCase("\"a\nb\"", 2, "control character 0x0A must be escaped in a string"),
    ErrorCase("\"\t\"", 1, "control character 0x09 must be escaped in a string"),
    ErrorCase(#""\x""#, 1, "invalid escape '\\x' in string"),
    ErrorCase(#""\'""#, 1, "invalid escape '\\'' in string"),
    ErrorCase(#""\u12""#, 1, "'\\u' must be followed by 4 hex digits"),
    ErrorCase(#""\u12"#, 1, "'\\u' must be followed by 4 hex digits"),
    ErrorCase(#""\uZZZZ""#, 1, "'\\u' must be followed by 4 hex digits"),
    ErrorCase(#""\uD800""#, 1, "unpaired surrogate \\uD800 in string"),
    ErrorCase(#""ab\udc00""#, 3, "unpaired surrogate \\udc00 in string"),
    ErrorCase(#""\uD800\u0041""#, 1, "unpaired surrogate \\uD800 in string"),
    ErrorCase(#""\uD800\uD800""#, 1, "unpaired surrogate \\uD800 in string"),
    ErrorCase(#""\uD800x""#, 1, "unpaired surrogate \\uD800 in string"),
    ErrorCase(#""\uD800\u00""#, 7, "'\\u' must be followed by 4 hex digits"),
    // UTF-8.
    ErrorCase(bytes: [0x22, 0xC3, 0x28, 0x22], 1, "invalid UTF-8"),  // bad continuation
    ErrorCase(bytes: [0x22, 0xC0, 0xAF, 0x22], 1, "invalid UTF-8"),  // overlong "/"
    ErrorCase(bytes: [0x22, 0xE0, 0x80, 0xAF, 0x22], 1, "invalid UTF-8"),  // overlong, 3 bytes
    ErrorCase(bytes: [0x22, 0xED, 0xA0, 0x80, 0x22], 1, "invalid UTF-8"),  // encoded surrogate
    ErrorCase(bytes: [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], 1, "invalid UTF-8"),  // above U+10FFFF
    ErrorCase(bytes: [0x22, 0x61, 0xE2, 0x82], 2, "invalid UTF-8"),  // cut short
    ErrorCase(bytes: [0x22, 0xFF, 0x22], 1, "invalid UTF-8"),
    ErrorCase(bytes: [0x22, 0x5C, 0x6E, 0x80, 0x22], 3, "invalid UTF-8"),  // after an escape
    ErrorCase(bytes: [0xEF, 0xBB, 0xBF, 0x31], 0, "unexpected byte 0xEF, expected a value"),  // BOM
]

@Test(arguments: errorCases)
private func reportsWhatIsWrongAndWhere(_ testCase: ErrorCase) {
    let error = parseError(testCase.input)
    #expect(error?.message == testCase.message)
    #expect(error?.offset == testCase.offset)
}

@Test func describesErrorsForUsers() {
    let error = JSONParseError(message: "expected ':' after object key", offset: 7)
    #expect(error.description == "invalid JSON at byte 7: expected ':' after object key")
}

// MARK: - Objects

@Test func keepsKeysInTheOrderTheyWereWritten() throws {
    let value = try parse(#"{"zebra":1,"apple":2,"mango":3}"#)
    #expect(value.objectValue?.keys == ["zebra", "apple", "mango"])
    #expect(value.objectValue.map { $0.map(\.key) } == ["zebra", "apple", "mango"])
    #expect(value.jsonString == #"{"zebra":1,"apple":2,"mango":3}"#)
}

@Test func duplicateKeysKeepTheLastValueAtTheFirstPosition() throws {
    let value = try parse(#"{"a":1,"b":2,"a":3}"#)
    #expect(value.objectValue?.keys == ["a", "b"])
    #expect(value["a"] == 3)
    #expect(value.jsonString == #"{"a":3,"b":2}"#)
}

@Test func settingNilRemovesAKeyAndNewKeysGoLast() {
    var object: JSONObject = ["a": 1, "b": 2, "c": 3]
    object["b"] = nil
    object["d"] = 4
    object["a"] = "x"
    #expect(object.keys == ["a", "c", "d"])
    #expect(object.count == 3)
    #expect(object["b"] == nil)
    #expect(object["a"] == "x")
    #expect(JSONValue.object(object).jsonString == #"{"a":"x","c":3,"d":4}"#)
    object["missing"] = nil
    #expect(object.count == 3)
}

@Test func objectEqualityAndHashingIgnoreKeyOrder() throws {
    let a = try parse(#"{"x":1,"y":[true,null],"z":{"p":1,"q":2}}"#)
    let b = try parse(#"{"z":{"q":2,"p":1},"x":1,"y":[true,null]}"#)
    #expect(a == b)
    #expect(a.hashValue == b.hashValue)
    #expect(Set([a, b]).count == 1)
    #expect(a != (try parse(#"{"x":1,"y":[null,true],"z":{"p":1,"q":2}}"#)))
    #expect(a != (try parse(#"{"x":1,"y":[true,null]}"#)))
}

// MARK: - Numbers and equality

@Test func numbersCompareByValueAcrossIntegerAndDouble() {
    #expect(JSONValue.integer(3) == .double(3))
    #expect(JSONValue.integer(3).hashValue == JSONValue.double(3).hashValue)
    #expect(JSONValue.integer(0) == .double(-0.0))
    #expect(JSONValue.integer(3) != .double(3.5))
    // 2^53 + 1 is not a double; converting it would round and wrongly compare equal.
    #expect(JSONValue.integer(9_007_199_254_740_993) != .double(9_007_199_254_740_992))
    #expect(JSONValue.integer(Int64.max) != .double(9_223_372_036_854_775_808))
    #expect(JSONValue.integer(1) != .bool(true))
    #expect(JSONValue.string("1") != .integer(1))
}

// MARK: - Literals and accessors

@Test func literalsBuildTheExpectedValues() {
    let value: JSONValue = ["name": "shoal", "port": 8080, "ratio": 0.5, "tags": ["a", nil, true], "empty": [:]]
    #expect(value["name"]?.stringValue == "shoal")
    #expect(value["port"]?.intValue == 8080)
    #expect(value["ratio"]?.doubleValue == 0.5)
    #expect(value["tags"]?[1]?.isNull == true)
    #expect(value["tags"]?[2]?.boolValue == true)
    #expect(value["empty"]?.objectValue?.isEmpty == true)
    #expect(value.objectValue?.keys == ["name", "port", "ratio", "tags", "empty"])
}

@Test func accessorsReturnNilForTheWrongKind() {
    let value: JSONValue = [1, "two"]
    #expect(value["key"] == nil)
    #expect(value[2] == nil)
    #expect(value[-1] == nil)
    #expect(value[0]?.stringValue == nil)
    #expect(value[1]?.intValue == nil)
    #expect(value[0]?.boolValue == nil)
    #expect(value.objectValue == nil)
    #expect(value.arrayValue?.count == 2)
    #expect(!value.isNull)
    #expect(JSONValue.double(2.0).intValue == 2)
    #expect(JSONValue.double(2.5).intValue == nil)
    #expect(JSONValue.integer(7).doubleValue == 7)
    #expect(JSONValue.string("x")[0] == nil)
}

// MARK: - Serializing

@Test func serializesCompactly() {
    let value: JSONValue = ["a": [1, 2.5, "x", nil, true, false], "b": [:], "c": []]
    #expect(value.jsonString == #"{"a":[1,2.5,"x",null,true,false],"b":{},"c":[]}"#)
    #expect(value.description == value.jsonString)
}

@Test func escapesOnlyWhatJSONRequires() {
    let value = JSONValue.string("q\" b\\ s/ \n\t\r\u{08}\u{0C} \u{00}\u{01}\u{1F}\u{7F} é€😀\u{2028}")
    #expect(value.jsonString == "\"q\\\" b\\\\ s/ \\n\\t\\r\\b\\f \\u0000\\u0001\\u001f\u{7F} é€😀\u{2028}\"")
}

@Test func escapesKeysToo() {
    let value: JSONValue = ["a\"b\n": 1]
    #expect(value.jsonString == #"{"a\"b\n":1}"#)
}

@Test func writesNumbersTheWayJSONStringifyDoes() {
    let cases: [(JSONValue, String)] = [
        (.integer(0), "0"),
        (.integer(-7), "-7"),
        (.integer(Int64.max), "9223372036854775807"),
        (.integer(Int64.min), "-9223372036854775808"),
        (.double(3.0), "3"),
        (.double(-0.0), "0"),
        (.double(-12.0), "-12"),
        (.double(0.1), "0.1"),
        (.double(-2.5), "-2.5"),
        (.double(9_007_199_254_740_992), "9007199254740992"),
        (.double(-9_007_199_254_740_992), "-9007199254740992"),
        (.double(1e20), "1e+20"),
        (.double(1.5e300), "1.5e+300"),
        (.double(1e-7), "1e-07"),
        (.double(.leastNonzeroMagnitude), "5e-324"),
        (.double(.nan), "null"),
        (.double(.infinity), "null"),
        (.double(-.infinity), "null"),
    ]
    for (value, expected) in cases {
        #expect(value.jsonString == expected)
    }
}

@Test func writesAfterExistingBytes() {
    var buffer = Array("prefix:".utf8)
    JSONValue.array([1, "a"]).write(into: &buffer)
    #expect(String(decoding: buffer, as: UTF8.self) == #"prefix:[1,"a"]"#)
}

@Test func roundTripsHandWrittenDocuments() throws {
    let documents = [
        #"{"a":[1,2,{"b":null}],"c":"\u0001\"\\","d":-1.5e-10,"e":true}"#,
        #"[[],{},[[]],"",0,-0.5,123456789012]"#,
        #""😀 \n é""#,
        "1.7976931348623157e+308",
        "[9223372036854775807,-9223372036854775808]",
    ]
    for document in documents {
        let value = try parse(document)
        #expect(value.jsonString == document)
        #expect(try parse(value.jsonString) == value)
    }
}

// MARK: - Randomized

@Test func randomDocumentsSurviveSerializeThenParse() throws {
    var random = RandomJSON(rng: SplitMix64(seed: 0x5A0A1))
    for _ in 0..<2_000 {
        let value = random.value()
        let text = value.jsonString
        let parsed = try parse(text)
        #expect(parsed == value, "\(text)")
        // The text is a fixed point: writing what was parsed gives the same bytes.
        #expect(parsed.jsonString == text)
    }
}

@Test func foundationReadsOurOutputAsTheSameStructure() throws {
    var random = RandomJSON(rng: SplitMix64(seed: 42), forFoundation: true)
    for _ in 0..<400 {
        let value = random.value()
        var bytes: [UInt8] = []
        value.write(into: &bytes)
        let foundation = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        let converted = try #require(fromFoundation(foundation))
        #expect(sameStructure(converted, value), "\(value.jsonString)")
    }
}

@Test func weReadFoundationsOutputAsTheSameStructure() throws {
    var random = RandomJSON(rng: SplitMix64(seed: 7), forFoundation: true)
    for _ in 0..<400 {
        let value = random.value()
        let ours = Data(value.jsonString.utf8)
        let foundation = try JSONSerialization.jsonObject(with: ours, options: [.fragmentsAllowed])
        // Foundation escapes "/" as "\/" and may write numbers differently; the structure must match.
        let data = try JSONSerialization.data(withJSONObject: foundation, options: [.fragmentsAllowed])
        let parsed = try data.withUnsafeBytes { raw throws(JSONParseError) in try JSONParser.parse(raw) }
        #expect(sameStructure(parsed, value), "\(String(decoding: data, as: UTF8.self))")
    }
}

@Test func randomGarbageNeverCrashesTheParser() {
    var rng = SplitMix64(seed: 99)
    let pieces = Array(#"{}[]",:\u0D83e+-.0123456789tfnaelsrux "#.utf8) + [0x00, 0x1F, 0x80, 0xC3, 0xA9, 0xF0, 0xFF]
    for _ in 0..<5_000 {
        let length = Int.random(in: 0...24, using: &rng)
        let bytes = (0..<length).map { _ in pieces[Int.random(in: 0..<pieces.count, using: &rng)] }
        do {
            let value = try parse(bytes: bytes)
            // Whatever parses must serialize to something that parses back the same.
            #expect(try parse(value.jsonString) == value)
        } catch {
            #expect(error.offset >= 0 && error.offset <= bytes.count)
        }
    }
}
