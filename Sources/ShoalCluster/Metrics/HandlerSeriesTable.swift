// The metrics a program's handlers record through swift-metrics, one bounded table per worker slot
// in the shared segment, so /metrics in any worker shows every worker's series. The worker in the
// slot inserts and updates its entries; any process reads them. A series, once in the table,
// stays for the supervisor's life (a restarted worker finds its predecessor's entry by key and
// goes on counting), so cluster-wide sums only grow.

// Table of one slot: `capacity` entries of 128 bytes (offsets within an entry):
//
//   0    kind u64       0: free; else `HandlerSeriesKind` raw value; stored last (release), so a
//                       reader that sees it non-zero sees the key below complete (acquire)
//   8    value u64      counter: the count; gauge: the value as Double bits; summary: the sum as Double bits
//   16   count u64      summary: observations; else 0
//   24   lengths u64    name length (low 32 bits) and key length (high 32 bits), in bytes
//   32   key            96 bytes: the exposed metric name, then its rendered labels (`a="x",b="y"`)
//
// Entries are taken in order and never freed, so a reader stops at the first free one.

/// What a handler series holds, and how /metrics shows it.
public enum HandlerSeriesKind: UInt64, Sendable {
    /// Summed over workers (`Counter`).
    case counter = 1
    /// Per worker (`Meter`, `Gauge`, a non-aggregating `Recorder`).
    case gauge = 2
    /// Sum and count, summed over workers (an aggregating `Recorder`, `Timer` in seconds).
    case summary = 3
}

/// A view of one slot's handler-series table (layout above).
public struct HandlerSeriesTable: Sendable {
    /// Series one worker may record; the ones past it are refused (and counted).
    public static let capacity = 64
    public static let entrySize = 128
    /// Longest key: the exposed name plus its rendered labels.
    public static let maxKeyBytes = 96
    public static let size = capacity * entrySize

    let memory: SharedMemory
    let offset: Int

    init(memory: SharedMemory, offset: Int) {
        self.memory = memory
        self.offset = offset
    }

    /// A table in private memory (a web server outside a cluster); the owner frees it.
    public static func detached() -> (table: HandlerSeriesTable, owner: AnyObject) {
        let owner = PrivateMemory(size: size)
        return (HandlerSeriesTable(memory: owner.memory, offset: 0), owner)
    }

    /// One series as read back.
    public struct Series: Sendable, Equatable {
        public var kind: HandlerSeriesKind
        public var name: String
        /// Rendered labels without braces (`a="x"`), empty when none.
        public var labels: String
        /// Counter: the count; gauge: the value; summary: the sum.
        public var value: Double
        public var count: UInt64
    }

    /// Where a series lives: an entry's byte offset in the segment.
    public struct Entry: Sendable {
        let offset: Int
    }

    /// The entry of `name` + `labels` of `kind`: the existing one, or a new one; nil when the table
    /// is full, the key too long, or the key taken by another kind. Callers serialise their calls
    /// (only the worker in the slot inserts).
    public func entry(kind: HandlerSeriesKind, name: String, labels: String) -> Entry? {
        let key = Array(name.utf8) + Array(labels.utf8)
        guard key.count <= Self.maxKeyBytes else { return nil }
        let lengths = UInt64(name.utf8.count) | UInt64(key.count) << 32
        for index in 0..<Self.capacity {
            let base = offset + index * Self.entrySize
            let found = memory.load64(base)
            if found == 0 {
                for word in 0..<(Self.maxKeyBytes / 8) {
                    var value: UInt64 = 0
                    for byte in 0..<8 where word * 8 + byte < key.count {
                        value |= UInt64(key[word * 8 + byte]) << (8 * UInt64(byte))
                    }
                    memory.store64(base + 32 + 8 * word, value)
                }
                memory.store64(base + 24, lengths)
                memory.store64(base + 8, 0)
                memory.store64(base + 16, 0)
                memory.store64(base, kind.rawValue)
                return Entry(offset: base)
            }
            guard memory.load64(base + 24) == lengths, self.key(at: base, count: key.count) == key else { continue }
            return found == kind.rawValue ? Entry(offset: base) : nil
        }
        return nil
    }

    private func key(at base: Int, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: memory.load64(base + 32 + 8 * ($0 / 8)) >> (8 * UInt64($0 % 8))) }
    }

    // MARK: Updating (any thread of the worker in the slot)

    /// Adds to a counter.
    public func increment(_ entry: Entry, by amount: UInt64) {
        _ = memory.fetchAddRelaxed64(entry.offset + 8, amount)
    }

    public func set(_ entry: Entry, _ value: Double) {
        memory.store64(entry.offset + 8, value.bitPattern)
    }

    /// Adds to a Double held as its bits (compare-and-swap: handlers record from any thread).
    public func add(_ entry: Entry, _ amount: Double) {
        while true {
            let old = memory.load64(entry.offset + 8)
            if memory.compareExchange64(entry.offset + 8, expected: old, desired: (Double(bitPattern: old) + amount).bitPattern) {
                return
            }
        }
    }

    /// One observation of a summary.
    public func observe(_ entry: Entry, _ value: Double) {
        add(entry, value)
        _ = memory.fetchAddRelaxed64(entry.offset + 16, 1)
    }

    /// Zeroes every gauge: a new worker in the slot starts its own values (a Meter its predecessor
    /// left at 5 would otherwise go on from 5); counters and summaries go on.
    public func resetGauges() {
        for index in 0..<Self.capacity {
            let base = offset + index * Self.entrySize
            let kind = memory.load64(base)
            if kind == 0 { break }
            if kind == HandlerSeriesKind.gauge.rawValue { memory.store64(base + 8, 0) }
        }
    }

    // MARK: Reading (any process)

    /// Every series of the table, in insertion order.
    public var series: [Series] {
        var out: [Series] = []
        for index in 0..<Self.capacity {
            let base = offset + index * Self.entrySize
            guard let kind = HandlerSeriesKind(rawValue: memory.load64(base)) else { break }
            let lengths = memory.load64(base + 24)
            let nameLength = Int(lengths & 0xFFFF_FFFF), keyLength = min(Int(lengths >> 32), Self.maxKeyBytes)
            let key = self.key(at: base, count: keyLength)
            let raw = memory.load64(base + 8)
            out.append(Series(kind: kind, name: String(decoding: key.prefix(nameLength), as: UTF8.self),
                              labels: String(decoding: key.dropFirst(nameLength), as: UTF8.self),
                              value: kind == .counter ? Double(raw) : Double(bitPattern: raw),
                              count: memory.load64(base + 16)))
        }
        return out
    }
}

/// Zeroed private memory behind a `SharedMemory` view, freed with its owner.
final class PrivateMemory {
    let memory: SharedMemory

    init(size: Int) {
        let base = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        memory = SharedMemory(base: base, length: size)
    }

    deinit { memory.base.deallocate() }
}
