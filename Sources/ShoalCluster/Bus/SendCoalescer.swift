// Sends to connections of other workers, gathered per destination worker until the end of the loop turn: the
// 4D chat example loops over `wss.connections` and sends the same text to each, and without this every remote
// recipient cost one bus message (a join into 10,000 clients on 12 workers: ~9,000 messages instead of 11).
// Consecutive sends of one payload to one worker become one `sendMany` carrying the payload once; anything else
// bound for that worker (another payload, a terminate, a broadcast) first takes out what is pending, so the
// order of messages from this worker to each connection is the order they were sent in.

/// Pending sends per destination slot. Pure: the bus asks it what to emit and when.
public struct SendCoalescer {
    private struct Pending {
        var opcode: UInt8
        var payload: [UInt8]
        var connections: [Int64]

        var message: BusMessage {
            connections.count == 1
                ? .send(connection: connections[0], opcode: opcode, payload: payload)
                : .sendMany(connections: connections, opcode: opcode, payload: payload)
        }

        func carries(_ opcode: UInt8, _ bytes: UnsafeRawBufferPointer) -> Bool {
            guard self.opcode == opcode, payload.count == bytes.count else { return false }
            return payload.withUnsafeBytes { Self.equal($0, bytes) }
        }

        /// Eight bytes at a time: every send to a remote connection compares its payload with the
        /// pending one, and a byte loop (`elementsEqual`) was 4.5 % of a 12-worker chat storm's CPU.
        static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
            var i = 0
            while i + 8 <= a.count {
                if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
                    return false
                }
                i += 8
            }
            while i < a.count {
                if a[i] != b[i] { return false }
                i += 1
            }
            return true
        }
    }

    private var pending: [Pending?]
    /// Slots with something pending, in the order they got it.
    private var slotsWithPending: [Int] = []

    public init(slotCount: Int) {
        pending = Array(repeating: nil, count: slotCount)
    }

    /// True when no send waits for any slot.
    public var isEmpty: Bool { slotsWithPending.isEmpty }

    /// Adds a send of `payload` to `connection` on `slot`. Returns the message that must leave for `slot` before
    /// this one can be gathered (a different payload was pending, or the list was full), if any.
    public mutating func add(
        slot: Int, connection: Int64, opcode: UInt8, payload: UnsafeRawBufferPointer
    ) -> BusMessage? {
        if pending[slot]?.carries(opcode, payload) == true,
            pending[slot]!.connections.count < BusEncoder.maxConnectionsPerMessage
        {
            pending[slot]!.connections.append(connection)
            return nil
        }
        let before = take(slot: slot)
        pending[slot] = Pending(opcode: opcode, payload: Array(payload), connections: [connection])
        slotsWithPending.append(slot)
        return before
    }

    /// What is pending for `slot` (one message), removed; nil when nothing is.
    public mutating func take(slot: Int) -> BusMessage? {
        guard let gathered = pending[slot] else { return nil }
        pending[slot] = nil
        slotsWithPending.removeAll { $0 == slot }
        return gathered.message
    }

    /// Everything pending, one message per slot, removed.
    public mutating func takeAll() -> [(slot: Int, message: BusMessage)] {
        let slots = slotsWithPending
        return slots.compactMap { slot in take(slot: slot).map { (slot, $0) } }
    }
}
