// Open WebSocket connections per client address, for `maxConnectionsPerAddress`. Each address with
// open connections has a numbered entry, and a connection keeps that number (4 bytes) instead of the
// address itself (a 16-byte String, plus a heap copy per connection for an IPv6 address longer than
// 15 bytes): an idle connection's size is what a worker multiplies by its connection count.

/// Connection counts by client address, each address named by a small index while it has connections.
struct AddressCounts {
    private struct Entry {
        var address: String
        var connections: Int
    }

    private var indexByAddress: [String: UInt32] = [:]
    private var entries: [Entry] = []
    /// Indexes of entries whose address has no connection left, reused first.
    private var freeIndexes: [UInt32] = []

    /// Open connections from `address`.
    func connections(from address: String) -> Int {
        indexByAddress[address].map { entries[Int($0)].connections } ?? 0
    }

    /// Counts one more connection from `address`; returns the index to give `remove(_:)` when it ends.
    mutating func add(_ address: String) -> UInt32 {
        if let index = indexByAddress[address] {
            entries[Int(index)].connections += 1
            return index
        }
        let index: UInt32
        if let reused = freeIndexes.popLast() {
            index = reused
            entries[Int(index)] = Entry(address: address, connections: 1)
        } else {
            index = UInt32(entries.count)
            entries.append(Entry(address: address, connections: 1))
        }
        indexByAddress[address] = index
        return index
    }

    /// Counts one connection less for the address `add(_:)` returned `index` for.
    mutating func remove(_ index: UInt32) {
        let i = Int(index)
        entries[i].connections -= 1
        guard entries[i].connections == 0 else { return }
        indexByAddress[entries[i].address] = nil
        entries[i].address = ""
        freeIndexes.append(index)
    }
}
