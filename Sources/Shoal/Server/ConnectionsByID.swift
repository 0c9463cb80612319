// This worker's WebSocket connections by id, for what arrives over the bus addressed to one of
// them (a proxy's send or terminate on another worker). An open-addressing table that stores
// only the object references and reads each key from the object itself: 8 bytes per bucket,
// where a [Int: WebSocketConnection] keeps the key beside the reference (16 bytes per bucket).

/// A set of connections, found by `id`. Loop thread only.
struct ConnectionsByID {
    /// Linear probing over a power-of-two table; nil is an empty bucket.
    private var buckets: ContiguousArray<WebSocketConnection?> = []
    private(set) var count = 0

    func connection(id: Int) -> WebSocketConnection? {
        guard count > 0 else { return nil }
        let mask = buckets.count - 1
        var i = Self.home(id, mask)
        while let candidate = buckets[i] {
            if candidate.id == id { return candidate }
            i = (i + 1) & mask
        }
        return nil
    }

    /// Adds `connection` (its id must not be in the table).
    mutating func insert(_ connection: WebSocketConnection) {
        // Grow at 3/4 full, as Swift's Dictionary does: probe runs stay short. Twofold: a fourfold
        // step saved a third of the moves in a connect storm, but left a worker of 12,300-24,500
        // clients a table of 64Ki buckets (512 KiB) instead of 32Ki, 16 B more per idle connection
        // at 50,000 clients over 3 workers, past the 256 B the idle-memory goal allows.
        if (count + 1) * 4 > buckets.count * 3 { rehash(capacity: max(16, buckets.count * 2)) }
        let mask = buckets.count - 1
        var i = Self.home(connection.id, mask)
        while buckets[i] != nil { i = (i + 1) & mask }
        buckets[i] = connection
        count += 1
    }

    /// Removes the connection with `id`, if present.
    mutating func remove(id: Int) {
        guard count > 0 else { return }
        let mask = buckets.count - 1
        var hole = Self.home(id, mask)
        while let candidate = buckets[hole] {
            if candidate.id == id { break }
            hole = (hole + 1) & mask
        }
        guard buckets[hole] != nil else { return }
        buckets[hole] = nil
        count -= 1
        // Backward-shift deletion: move later members of the run into the hole when their home
        // position allows it, so that no lookup stops early at the new empty bucket.
        var next = (hole + 1) & mask
        while let moved = buckets[next] {
            let home = Self.home(moved.id, mask)
            // `moved` may fill the hole if the hole lies cyclically within [home, next).
            if (next &- home) & mask >= (next &- hole) & mask {
                buckets[hole] = moved
                buckets[next] = nil
                hole = next
            }
            next = (next + 1) & mask
        }
    }

    private mutating func rehash(capacity: Int) {
        let old = buckets
        buckets = ContiguousArray(repeating: nil, count: capacity)
        count = 0
        for case let connection? in old { insert(connection) }
    }

    /// Ids are consecutive integers handed out across workers; a multiplicative hash spreads them.
    private static func home(_ id: Int, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (UInt64(bitPattern: Int64(id)) &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }
}
