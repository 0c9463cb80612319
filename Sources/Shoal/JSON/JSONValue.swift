// The value a `dataType: "object"` server hands to `onMessage` and takes in `send(object)`.
// A plain enum so handlers can switch on it, with literals and accessors so they rarely need to.

/// A JSON value, as received from or sent to a client of an `"object"` WebSocket server.
///
/// Numbers keep whether they were written as integers: `42` parses as `.integer(42)`, while
/// `4.2`, `1e3` and integers too big for `Int64` parse as `.double`. Equality compares numbers by value,
/// so `.integer(3) == .double(3.0)`, because JSON has a single number type and the serializer
/// writes both as `3`. Object equality ignores key order (see ``JSONObject``).
public enum JSONValue: Sendable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number written without fraction or exponent that fits in 64 bits.
    case integer(Int64)
    /// Any other number.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object, keys in insertion order.
    case object(JSONObject)
}

// MARK: - Equality

extension JSONValue: Equatable, Hashable {
    /// Structural equality; numbers compare by exact value across `.integer` and `.double`.
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case let (.bool(a), .bool(b)): a == b
        case let (.integer(a), .integer(b)): a == b
        case let (.double(a), .double(b)): a == b
        // Exact conversion: `Double(2^53 + 1)` would round and wrongly compare equal.
        case let (.integer(a), .double(b)), let (.double(b), .integer(a)): Int64(exactly: b) == a
        case let (.string(a), .string(b)): a == b
        case let (.array(a), .array(b)): a == b
        case let (.object(a), .object(b)): a == b
        default: false
        }
    }

    /// Hashes so that values equal under `==` hash alike: a double holding an exact integer
    /// hashes as that integer.
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null:
            hasher.combine(0 as UInt8)
        case .bool(let b):
            hasher.combine(1 as UInt8)
            hasher.combine(b)
        case .integer(let i):
            hasher.combine(2 as UInt8)
            hasher.combine(i)
        case .double(let d):
            hasher.combine(2 as UInt8)
            if let i = Int64(exactly: d) {
                hasher.combine(i)
            } else {
                hasher.combine(d)
            }
        case .string(let s):
            hasher.combine(3 as UInt8)
            hasher.combine(s)
        case .array(let a):
            hasher.combine(4 as UInt8)
            hasher.combine(a)
        case .object(let o):
            hasher.combine(5 as UInt8)
            hasher.combine(o)
        }
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByNilLiteral {
    /// `nil` is JSON `null`.
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    /// A boolean literal.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    /// An integer literal.
    public init(integerLiteral value: Int64) { self = .integer(value) }
}

extension JSONValue: ExpressibleByFloatLiteral {
    /// A floating-point literal.
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension JSONValue: ExpressibleByStringLiteral {
    /// A string literal.
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: ExpressibleByArrayLiteral {
    /// An array literal.
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// A dictionary literal becomes an object, keeping the written key order.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var object = JSONObject(minimumCapacity: elements.count)
        for (key, value) in elements {
            object.updateValue(value, forKey: key)
        }
        self = .object(object)
    }
}

// MARK: - Accessors

extension JSONValue {
    /// The member `key` of an object, or `nil` if absent or if this is not an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let object) = self else { return nil }
        return object[key]
    }

    /// The element at `index` of an array, or `nil` if out of range or if this is not an array.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let array) = self, array.indices.contains(index) else { return nil }
        return array[index]
    }

    /// The string, if this is a string.
    public var stringValue: String? {
        guard case .string(let s) = self else { return nil }
        return s
    }

    /// The number as an `Int`, if it is one exactly (`3.0` counts, `3.5` does not).
    public var intValue: Int? {
        switch self {
        case .integer(let i): Int(exactly: i)
        case .double(let d): Int(exactly: d)
        default: nil
        }
    }

    /// The number as a `Double`; large integers round to the nearest double.
    public var doubleValue: Double? {
        switch self {
        case .integer(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }

    /// The boolean, if this is `true` or `false`.
    public var boolValue: Bool? {
        guard case .bool(let b) = self else { return nil }
        return b
    }

    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? {
        guard case .array(let a) = self else { return nil }
        return a
    }

    /// The object, if this is an object.
    public var objectValue: JSONObject? {
        guard case .object(let o) = self else { return nil }
        return o
    }

    /// Whether this is `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}
