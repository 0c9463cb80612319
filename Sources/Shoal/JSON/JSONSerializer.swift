// Writes a JSONValue as compact JSON text for `send(object)`, matching what JSON.stringify
// (and so 4D's JSON Stringify) produces: no whitespace, keys in insertion order, minimal escaping.

// ASCII bytes the output uses.
private let quote = UInt8(ascii: "\"")
private let backslash = UInt8(ascii: "\\")
private let comma = UInt8(ascii: ",")
private let colon = UInt8(ascii: ":")
private let zero = UInt8(ascii: "0")

/// Integral doubles up to this magnitude are written without a fraction (`3.0` as `3`), as
/// JavaScript does; beyond it not every integer is representable, so the shortest
/// round-tripping form (`1e+20`) is clearer.
private let largestExactInteger: Double = 9_007_199_254_740_992  // 2^53

extension JSONValue {
    /// The value as compact JSON text, e.g. `{"a":[1,2.5,"x"],"b":null}`.
    ///
    /// Strings escape only `"`, `\` and control characters (`\n`, `\t`, `\r`, `\b`, `\f`,
    /// else `\u00XX`); other characters, `/` included, are written as UTF-8. Numbers use the
    /// shortest text that reads back to the same value; NaN and infinity become `null`, as in
    /// JSON.stringify.
    public var jsonString: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(estimatedLength)
        write(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the value's compact JSON text (see ``jsonString``) as UTF-8 to `output`, so a
    /// caller can build a frame around it without an intermediate `String`.
    ///
    /// Recurses once per nesting level; values from ``JSONParser`` are at most 512 deep.
    public func write(into output: inout [UInt8]) {
        switch self {
        case .null:
            output.append(contentsOf: "null".utf8)
        case .bool(let b):
            output.append(contentsOf: b ? "true".utf8 : "false".utf8)
        case .integer(let i):
            writeInteger(i, into: &output)
        case .double(let d):
            writeDouble(d, into: &output)
        case .string(let s):
            writeString(s, into: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 {
                    output.append(comma)
                }
                element.write(into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let object):
            output.append(UInt8(ascii: "{"))
            var first = true
            for (key, value) in object {
                if !first {
                    output.append(comma)
                }
                first = false
                writeString(key, into: &output)
                output.append(colon)
                value.write(into: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// A cheap first guess at the output size, to avoid the first few reallocations.
    private var estimatedLength: Int {
        switch self {
        case .string(let s): s.utf8.count + 2
        case .array(let a): 16 * a.count + 2
        case .object(let o): 32 * o.count + 2
        default: 24
        }
    }
}

extension JSONValue: CustomStringConvertible {
    /// The compact JSON text, so values read naturally in logs and test failures.
    public var description: String { jsonString }
}

private func writeInteger(_ value: Int64, into output: inout [UInt8]) {
    if value < 0 {
        output.append(UInt8(ascii: "-"))
    }
    // `magnitude` is unsigned, so Int64.min needs no special case.
    var rest = value.magnitude
    let start = output.count
    repeat {
        output.append(zero + UInt8(rest % 10))
        rest /= 10
    } while rest > 0
    output[start...].reverse()
}

private func writeDouble(_ value: Double, into output: inout [UInt8]) {
    guard value.isFinite else {
        output.append(contentsOf: "null".utf8)
        return
    }
    if value.magnitude <= largestExactInteger, value.rounded(.towardZero) == value {
        // Also turns -0.0 into "0", as JSON.stringify does.
        writeInteger(Int64(value), into: &output)
        return
    }
    // Swift's description is the shortest round-tripping form, and its "1e-07" / "1e+20"
    // exponent style is valid JSON.
    output.append(contentsOf: value.description.utf8)
}

private func writeString(_ string: String, into output: inout [UInt8]) {
    output.append(quote)
    let wroteContiguously: Void? = string.utf8.withContiguousStorageIfAvailable { utf8 in
        writeEscaped(utf8, into: &output)
    }
    if wroteContiguously == nil {
        // Bridged or otherwise non-native strings: make a native copy first.
        var native = string
        native.withUTF8 { writeEscaped($0, into: &output) }
    }
    output.append(quote)
}

/// Copies runs of bytes that need no escaping in one go, escaping the rest.
private func writeEscaped(_ utf8: UnsafeBufferPointer<UInt8>, into output: inout [UInt8]) {
    var runStart = 0
    for index in utf8.indices {
        let byte = utf8[index]
        guard byte < 0x20 || byte == quote || byte == backslash else { continue }
        output.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
        runStart = index + 1
        output.append(backslash)
        switch byte {
        case quote: output.append(quote)
        case backslash: output.append(backslash)
        case 0x0A: output.append(UInt8(ascii: "n"))
        case 0x09: output.append(UInt8(ascii: "t"))
        case 0x0D: output.append(UInt8(ascii: "r"))
        case 0x08: output.append(UInt8(ascii: "b"))
        case 0x0C: output.append(UInt8(ascii: "f"))
        default:
            // Lower-case hex, as JSON.stringify writes it.
            output.append(contentsOf: "u00".utf8)
            output.append(zero + byte >> 4)  // 0 or 1: control characters are below 0x20
            let low = byte & 0xF
            output.append(low < 10 ? zero + low : UInt8(ascii: "a") + low - 10)
        }
    }
    output.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
}
