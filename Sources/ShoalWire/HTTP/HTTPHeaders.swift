// Header fields as received: order and repeats matter (Sec-WebSocket-Key must appear once, token
// lists may be spread over several lines), and names compare case-insensitively (RFC 9110 §5.1).

/// An ordered list of (name, value) header fields; names compare case-insensitively.
public struct HTTPHeaders: Sendable, Sequence {
    /// One header field.
    public typealias Element = (name: String, value: String)

    private var fields: [Element] = []

    /// Creates an empty list.
    public init() {}

    /// Creates a list from pairs, keeping their order.
    public init(_ pairs: [(String, String)]) {
        fields = pairs.map { (name: $0.0, value: $0.1) }
    }

    /// Appends a field, keeping earlier fields with the same name.
    public mutating func add(name: String, value: String) {
        fields.append((name: name, value: value))
    }

    /// The first value of the field `name`, if any.
    public subscript(_ name: String) -> String? {
        fields.first { asciiCaseInsensitiveEquals($0.name, name) }?.value
    }

    /// Every value of the field `name`, in the order received.
    public func values(_ name: String) -> [String] {
        fields.filter { asciiCaseInsensitiveEquals($0.name, name) }.map(\.value)
    }

    /// Whether a comma-separated token list header (any occurrence) contains `token`, case-insensitively.
    public func containsToken(_ token: String, in name: String) -> Bool {
        for field in fields where asciiCaseInsensitiveEquals(field.name, name) {
            for element in field.value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true)
            where asciiCaseInsensitiveEquals(trimmingOWS(element), token.utf8) {
                return true
            }
        }
        return false
    }

    /// Number of fields, repeats included.
    public var count: Int { fields.count }

    /// Iterates the fields in the order received.
    public func makeIterator() -> IndexingIterator<[Element]> {
        fields.makeIterator()
    }
}

/// Compares ASCII case-insensitively without building lowercased copies.
func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    asciiCaseInsensitiveEquals(a.utf8[...], b.utf8)
}

func asciiCaseInsensitiveEquals(_ a: Substring.UTF8View, _ b: String.UTF8View) -> Bool {
    guard a.count == b.count else { return false }
    return zip(a, b).allSatisfy { asciiLower($0) == asciiLower($1) }
}

@inline(__always)
func asciiLower(_ byte: UInt8) -> UInt8 {
    byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
}

/// Drops optional whitespace (SP / HTAB, RFC 9110 §5.6.3) at both ends.
func trimmingOWS(_ bytes: Substring.UTF8View) -> Substring.UTF8View {
    var slice = bytes
    while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
    while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
    return slice
}
