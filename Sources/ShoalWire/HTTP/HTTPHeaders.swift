// Header fields as received: order and repeats matter (Sec-WebSocket-Key must appear once, token
// lists may be spread over several lines), and names compare case-insensitively (RFC 9110 §5.1).
// The fields stay bytes in one buffer (the parser's copy of the request head) with their positions
// beside it: a handshake looks fields up and never needs most of them as Strings, which cost an
// allocation each past 15 bytes ("Sec-WebSocket-Key", its value, "Sec-WebSocket-Version").

/// An ordered list of (name, value) header fields; names compare case-insensitively.
public struct HTTPHeaders: Sendable, Sequence {
    /// One header field.
    public typealias Element = (name: String, value: String)

    /// Where one field's name and value lie in `bytes` (half-open ranges; a head is at most
    /// the parser's maxHeadSize, which it keeps within 32 bits).
    struct Field: Sendable {
        var nameStart: UInt32
        var nameEnd: UInt32
        var valueStart: UInt32
        var valueEnd: UInt32
    }

    /// Every field's name and value, and whatever else the buffer holds (the request line, line
    /// ends) between them.
    private var bytes: [UInt8]
    private var fields: [Field] = []

    /// Creates an empty list.
    public init() { bytes = [] }

    /// Creates a list from pairs, keeping their order.
    public init(_ pairs: [(String, String)]) {
        bytes = []
        for (name, value) in pairs { add(name: name, value: value) }
    }

    /// Fields found in `bytes` by the parser (which owns the buffer until then).
    init(bytes: [UInt8], fields: [Field]) {
        self.bytes = bytes
        self.fields = fields
    }

    /// Makes room for `count` fields in all.
    public mutating func reserveCapacity(_ count: Int) {
        fields.reserveCapacity(count)
    }

    /// Appends a field, keeping earlier fields with the same name.
    public mutating func add(name: String, value: String) {
        let nameStart = UInt32(bytes.count)
        bytes += name.utf8
        let valueStart = UInt32(bytes.count)
        bytes += value.utf8
        fields.append(Field(nameStart: nameStart, nameEnd: valueStart, valueStart: valueStart, valueEnd: UInt32(bytes.count)))
    }

    /// The first value of the field `name`, if any.
    public subscript(_ name: String) -> String? {
        withFields(named: name) { values in values.first.map { String(decoding: $0, as: UTF8.self) } }
    }

    /// Whether the field `name` is present (without making its value a String).
    public func contains(_ name: String) -> Bool {
        withFields(named: name) { !$0.isEmpty }
    }

    /// Every value of the field `name`, in the order received.
    public func values(_ name: String) -> [String] {
        withFields(named: name) { values in values.map { String(decoding: $0, as: UTF8.self) } }
    }

    /// How many times the field `name` appears (without collecting its values).
    public func count(of name: String) -> Int {
        withFields(named: name) { $0.count }
    }

    /// Whether a comma-separated token list header (any occurrence) contains `token`, case-insensitively.
    /// Scans the bytes in place: every upgrade request asks this three times.
    public func containsToken(_ token: String, in name: String) -> Bool {
        var token = token
        return token.withUTF8 { wanted in
            withFields(named: name) { values in
                values.contains { value in
                    var start = value.startIndex
                    while start < value.endIndex {
                        let end = value[start...].firstIndex(of: UInt8(ascii: ",")) ?? value.endIndex
                        if asciiCaseInsensitiveEquals(trimmingOWS(value[start..<end]), wanted[...]) { return true }
                        start = end + 1
                    }
                    return false
                }
            }
        }
    }

    /// Number of fields, repeats included.
    public var count: Int { fields.count }

    /// Iterates the fields in the order received.
    public func makeIterator() -> Iterator {
        Iterator(headers: self)
    }

    /// Gives each field as a pair of Strings, made as it is reached.
    public struct Iterator: IteratorProtocol {
        private let headers: HTTPHeaders
        private var position = 0

        fileprivate init(headers: HTTPHeaders) { self.headers = headers }

        public mutating func next() -> Element? {
            guard position < headers.fields.count else { return nil }
            let field = headers.fields[position]
            position += 1
            let bytes = headers.bytes
            return (
                name: String(decoding: bytes[Int(field.nameStart)..<Int(field.nameEnd)], as: UTF8.self),
                value: String(decoding: bytes[Int(field.valueStart)..<Int(field.valueEnd)], as: UTF8.self)
            )
        }
    }

    /// Calls `body` with the values of every field named `name` (case-insensitively), in order, as
    /// slices of the buffer: no String is made unless `body` makes one.
    func withFields<Result>(named name: String, _ body: (FieldValues) -> Result) -> Result {
        var name = name
        return name.withUTF8 { wanted in
            bytes.withUnsafeBufferPointer { all in
                // The field list as a buffer too: a copy of the array in FieldValues, and each
                // iterator's copy of that, would retain and release it.
                fields.withUnsafeBufferPointer { fields in
                    body(FieldValues(bytes: all, fields: fields, wanted: wanted))
                }
            }
        }
    }

    /// The values of the fields with one name, found as they are iterated.
    struct FieldValues: Sequence {
        let bytes: UnsafeBufferPointer<UInt8>
        let fields: UnsafeBufferPointer<Field>
        let wanted: UnsafeBufferPointer<UInt8>

        var isEmpty: Bool { first == nil }

        var count: Int {
            var count = 0
            for _ in self { count += 1 }
            return count
        }

        var first: Slice<UnsafeBufferPointer<UInt8>>? {
            var iterator = makeIterator()
            return iterator.next()
        }

        /// The value when the field appears exactly once; nil when it is missing or repeated.
        var onlyValue: Slice<UnsafeBufferPointer<UInt8>>? {
            var iterator = makeIterator()
            guard let value = iterator.next(), iterator.next() == nil else { return nil }
            return value
        }

        func makeIterator() -> Iterator { Iterator(values: self) }

        struct Iterator: IteratorProtocol {
            let values: FieldValues
            var index = 0

            mutating func next() -> Slice<UnsafeBufferPointer<UInt8>>? {
                while index < values.fields.count {
                    let field = values.fields[index]
                    index += 1
                    let name = values.bytes[Int(field.nameStart)..<Int(field.nameEnd)]
                    if asciiCaseInsensitiveEquals(name, values.wanted[...]) {
                        return values.bytes[Int(field.valueStart)..<Int(field.valueEnd)]
                    }
                }
                return nil
            }
        }
    }
}

/// Compares ASCII case-insensitively without building lowercased copies, over the strings' bytes
/// in place.
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
