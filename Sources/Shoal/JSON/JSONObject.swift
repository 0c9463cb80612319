// A JSON object that remembers the order its keys were added in, because 4D keeps property
// order and users expect `send(object)` to echo keys back in the order they were written.
// Lookup stays O(1): the values live in a dictionary, the order in a separate keys array.

/// A JSON object: string keys mapped to ``JSONValue``s, iterated in insertion order.
///
/// Two objects are equal when they hold the same keys with equal values, whatever the order,
/// because JSON objects are unordered. Setting an existing key replaces its value and keeps
/// its position, which is also what parsing does with duplicate keys (last value wins,
/// position of the first).
public struct JSONObject: Sendable {
    /// Keys in insertion order; always exactly the keys of `storage`.
    public private(set) var keys: [String]
    /// The values, keyed for O(1) lookup. Equality and hashing use only this, so they ignore order.
    private var storage: [String: JSONValue]

    /// Creates an empty object.
    public init() {
        keys = []
        storage = [:]
    }

    /// Creates an empty object with room for `minimumCapacity` keys without reallocating.
    public init(minimumCapacity: Int) {
        keys = []
        keys.reserveCapacity(minimumCapacity)
        storage = Dictionary(minimumCapacity: minimumCapacity)
    }

    /// The number of keys.
    public var count: Int { keys.count }

    /// Whether the object has no keys.
    public var isEmpty: Bool { keys.isEmpty }

    /// The value for `key`, or `nil` when absent. Setting `nil` removes the key (O(n), since
    /// the order array has to close the gap); setting a value appends new keys at the end.
    public subscript(key: String) -> JSONValue? {
        get { storage[key] }
        set {
            if let newValue {
                updateValue(newValue, forKey: key)
            } else {
                removeValue(forKey: key)
            }
        }
    }

    /// Sets `value` for `key` and returns the value it replaced. A new key goes to the end;
    /// an existing key keeps its position.
    @discardableResult
    public mutating func updateValue(_ value: JSONValue, forKey key: String) -> JSONValue? {
        let old = storage.updateValue(value, forKey: key)
        if old == nil {
            keys.append(key)
        }
        return old
    }

    /// Removes `key` and returns its value, or `nil` if it was absent.
    @discardableResult
    public mutating func removeValue(forKey key: String) -> JSONValue? {
        guard let old = storage.removeValue(forKey: key) else { return nil }
        if let position = keys.firstIndex(of: key) {
            keys.remove(at: position)
        }
        return old
    }
}

extension JSONObject: Equatable, Hashable {
    /// Equal when both hold the same keys with equal values; key order does not matter.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.storage == rhs.storage
    }

    /// Hashes keys and values without regard to order, to agree with `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(storage)
    }
}

extension JSONObject: Sequence {
    /// A key and its value, in insertion order.
    public typealias Element = (key: String, value: JSONValue)

    /// Walks the keys in insertion order and looks each value up.
    public struct Iterator: IteratorProtocol {
        private var keys: IndexingIterator<[String]>
        private let storage: [String: JSONValue]

        fileprivate init(keys: [String], storage: [String: JSONValue]) {
            self.keys = keys.makeIterator()
            self.storage = storage
        }

        /// The next key and value, or `nil` at the end.
        public mutating func next() -> Element? {
            guard let key = keys.next() else { return nil }
            // `keys` and `storage` always hold the same keys, so the lookup cannot fail.
            return (key, storage[key]!)
        }
    }

    /// Iterates key/value pairs in insertion order.
    public func makeIterator() -> Iterator {
        Iterator(keys: keys, storage: storage)
    }

    /// The key count, so `Array(object)` reserves exactly.
    public var underestimatedCount: Int { keys.count }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    /// Creates an object from a literal, keeping the written key order. A repeated key keeps
    /// its first position and its last value, as in parsing.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(minimumCapacity: elements.count)
        for (key, value) in elements {
            updateValue(value, forKey: key)
        }
    }
}
