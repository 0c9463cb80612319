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

    /// Makes room for `count` fields in all.
    public mutating func reserveCapacity(_ count: Int) {
        fields.reserveCapacity(count)
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

    /// How many times the field `name` appears (without collecting its values).
    public func count(of name: String) -> Int {
        var count = 0
        for field in fields where asciiCaseInsensitiveEquals(field.name, name) { count += 1 }
        return count
    }

    /// Whether a comma-separated token list header (any occurrence) contains `token`, case-insensitively.
    /// Scans the bytes in place: every upgrade request asks this three times.
    public func containsToken(_ token: String, in name: String) -> Bool {
        var token = token
        return token.withUTF8 { wanted in
            for field in fields where asciiCaseInsensitiveEquals(field.name, name) {
                var value = field.value
                let found = value.withUTF8 { bytes in
                    var start = 0
                    while start < bytes.count {
                        let end = bytes[start...].firstIndex(of: UInt8(ascii: ",")) ?? bytes.count
                        if asciiCaseInsensitiveEquals(trimmingOWS(bytes[start..<end]), wanted[...]) { return true }
                        start = end + 1
                    }
                    return false
                }
                if found { return true }
            }
            return false
        }
    }

    /// Number of fields, repeats included.
    public var count: Int { fields.count }

    /// Iterates the fields in the order received.
    public func makeIterator() -> IndexingIterator<[Element]> {
        fields.makeIterator()
    }
}

/// Compares ASCII case-insensitively without building lowercased copies, over the strings' bytes
/// in place (a header name is compared with each field's name on every lookup).
func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    guard a.utf8.count == b.utf8.count else { return false }
    var a = a
    var b = b
    return a.withUTF8 { x in b.withUTF8 { y in asciiCaseInsensitiveEquals(x[...], y[...]) } }
}

func asciiCaseInsensitiveEquals(_ a: Slice<UnsafeBufferPointer<UInt8>>, _ b: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
    guard a.count == b.count else { return false }
    return zip(a, b).allSatisfy { asciiLower($0) == asciiLower($1) }
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
func trimmingOWS<Bytes: BidirectionalCollection<UInt8>>(_ bytes: Bytes) -> Bytes.SubSequence where Bytes.SubSequence == Bytes {
    var slice = bytes
    while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
    while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
    return slice
}
