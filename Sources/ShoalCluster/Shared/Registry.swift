// The registry of live connections in the shared segment: which worker slot holds which connection
// id, for which server, in which status. Lets any process list the whole cluster without asking.

// Entry layout (16 bytes, partition p = worker slot p, entry i at partitionOffset(p) + 16*i):
//
//   0    id      u64   connection id; 0 = free. Published last, cleared first.
//   8    server  u32   the server (path) the connection belongs to
//   12   status  u32   Registry.Status raw value
//
// Every live WebSocket holds an entry for its whole life, so it is kept to what a reader needs:
// 16 bytes per idle connection of shared memory (layout version 3; version 2 reserved 16 more).
//
// Per partition, in the reserved bytes of the slot's WorkerStats block (WorkerStats.swift):
//   byte 96  high-water mark u32: entries at index >= it are free; readers scan [0, hw) only
//   byte 100 live count u32
//
// Concurrency: a partition is written only by the worker in its slot (no cross-process write
// contention), and by the supervisor only to sweep it once that worker is dead. Readers anywhere
// use acquire loads. Publishing: server, status (release), then high-water mark, then id
// (release). Removing: id 0 (release) first. A reader loads the id (acquire), then server and
// status (acquire), then the id again: if it changed, the entry was reused while read and is
// skipped. Since the fields are stored with release after the id was cleared, a reader that saw a
// new owner's field also sees the cleared or new id on its second load, never the old one.

/// The registry of live connections (layout and protocol above).
public final class Registry: @unchecked Sendable {
    public enum Status: UInt32, Sendable {
        case connected = 1
        case closing = 2
    }

    /// A handle to one entry that its owner keeps to update or remove it. `id` lets a stale handle
    /// (its entry swept and reused) do nothing instead of touching another connection's entry.
    public struct Entry: Hashable, Sendable {
        public let slot: Int
        public let index: Int
        public let id: Int

        /// The handle of entry `index` of `slot`'s partition for connection `id`, for an owner that
        /// keeps only the index (its slot and the id it knows already).
        public init(slot: Int, index: Int, id: Int) {
            self.slot = slot
            self.index = index
            self.id = id
        }
    }

    /// The owner's process-local bookkeeping of one partition. Only the owner of the slot (one
    /// thread at a time: the worker's loop) touches it; each slot has its own object, so owners of
    /// different slots in one process (tests) do not share mutable state.
    private final class OwnerState {
        /// Freed indices below `highWater`, reused last-freed first.
        var free: [Int] = []
        var highWater = 0
        var live = 0
    }

    public let workerSlots: Int
    /// Entries per partition.
    public let capacity: Int
    private let memory: SharedMemory
    private let owners: [OwnerState]

    init(memory: SharedMemory, workerSlots: Int, capacity: Int) {
        self.memory = memory
        self.workerSlots = workerSlots
        self.capacity = capacity
        owners = (0..<workerSlots).map { _ in OwnerState() }
    }

    // MARK: offsets

    private func entryOffset(slot: Int, index: Int) -> Int {
        SegmentLayout.partitionOffset(slot: slot, workerSlots: workerSlots, registryCapacity: capacity)
            + index * SegmentLayout.entrySize
    }

    private func statsWord(_ slot: Int, _ field: Int) -> Int {
        SegmentLayout.statsOffset + slot * SegmentLayout.statsStride + field
    }

    private func checkSlot(_ slot: Int) {
        precondition(slot >= 0 && slot < workerSlots, "worker slot \(slot) out of 0..<\(workerSlots)")
    }

    private func loadID(_ offset: Int) -> Int { Int(truncatingIfNeeded: memory.load64(offset)) }

    // MARK: owner side

    /// Claims an entry in `slot`'s partition for connection `id` (> 0) of `server`, status
    /// connected. O(1). nil when the partition is full: the caller refuses the client (503).
    public func insert(id: Int, server: Int, slot: Int) -> Entry? {
        checkSlot(slot)
        precondition(id > 0, "connection ids start at 1")
        precondition(server >= 0 && server <= Int(UInt32.max), "server \(server) does not fit the registry's u32")
        let owner = owners[slot]
        let index: Int
        if let reused = owner.free.popLast() {
            index = reused
        } else if owner.highWater < capacity {
            index = owner.highWater
            owner.highWater += 1
        } else {
            return nil
        }
        let offset = entryOffset(slot: slot, index: index)
        memory.store32(offset + 8, UInt32(server))
        memory.store32(offset + 12, Status.connected.rawValue)
        if index + 1 > Int(memory.load32(statsWord(slot, WorkerStats.Field.registryHighWater))) {
            memory.store32(statsWord(slot, WorkerStats.Field.registryHighWater), UInt32(owner.highWater))
        }
        memory.store64(offset, UInt64(id))
        owner.live += 1
        memory.store32(statsWord(slot, WorkerStats.Field.registryLive), UInt32(owner.live))
        return Entry(slot: slot, index: index, id: id)
    }

    /// Sets the status of the owner's entry (nothing if the entry no longer holds its id).
    public func setStatus(_ entry: Entry, _ status: Status) {
        checkSlot(entry.slot)
        let offset = entryOffset(slot: entry.slot, index: entry.index)
        guard loadID(offset) == entry.id else { return }
        memory.store32(offset + 12, status.rawValue)
    }

    /// Frees the owner's entry (nothing if it was already removed or swept).
    public func remove(_ entry: Entry) {
        checkSlot(entry.slot)
        let offset = entryOffset(slot: entry.slot, index: entry.index)
        guard loadID(offset) == entry.id else { return }
        memory.store64(offset, 0)
        let owner = owners[entry.slot]
        owner.free.append(entry.index)
        owner.live -= 1
        memory.store32(statsWord(entry.slot, WorkerStats.Field.registryLive), UInt32(max(0, owner.live)))
    }

    /// A new worker in `slot` calls this before its first insert: clears whatever a previous owner
    /// left (normally swept already), the partition's high-water mark and live count, and this
    /// process's free list for the slot.
    public func adopt(slot: Int) {
        checkSlot(slot)
        clear(slot: slot)
        let owner = owners[slot]
        owner.free.removeAll(keepingCapacity: true)
        owner.highWater = 0
        owner.live = 0
    }

    // MARK: supervisor side

    /// After the worker in `slot` died: clears every entry of its partition so no process lists
    /// its dead connections. The next worker in the slot calls `adopt(slot:)`.
    public func sweep(slot: Int) {
        checkSlot(slot)
        clear(slot: slot)
    }

    /// Ids first (readers skip the entries at once), then the high-water mark and live count.
    private func clear(slot: Int) {
        let highWater = min(capacity, Int(memory.load32(statsWord(slot, WorkerStats.Field.registryHighWater))))
        for index in 0..<highWater {
            let offset = entryOffset(slot: slot, index: index)
            if memory.load64(offset) != 0 { memory.store64(offset, 0) }
        }
        memory.store32(statsWord(slot, WorkerStats.Field.registryHighWater), 0)
        memory.store32(statsWord(slot, WorkerStats.Field.registryLive), 0)
    }

    // MARK: reader side (any process)

    /// Calls `body` for every live entry of `server` in every slot except `excludingSlot`, scanning
    /// each partition up to its high-water mark. Entries inserted or removed during the scan may or
    /// may not be seen; an entry caught half-written is skipped, never reported wrong.
    public func forEach(server: Int, excludingSlot: Int?, _ body: (_ id: Int, _ slot: Int, _ status: Status) -> Void) {
        for slot in 0..<workerSlots where slot != excludingSlot {
            scan(slot: slot) { id, entryServer, status in
                if entryServer == server { body(id, slot, status) }
                return true
            }
        }
    }

    /// How many live entries of `server` `forEach` would report.
    public func count(server: Int, excludingSlot: Int?) -> Int {
        var total = 0
        forEach(server: server, excludingSlot: excludingSlot) { _, _, _ in total += 1 }
        return total
    }

    /// Status of connection `id` known to be in `slot` (nil when it is no longer there).
    public func status(id: Int, slot: Int) -> Status? {
        var found: Status?
        scan(slot: slot) { entryID, _, status in
            if entryID == id { found = status; return false }
            return true
        }
        return found
    }

    /// Live entries of `slot`'s partition (the owner's count, published after each change).
    public func liveCount(slot: Int) -> Int {
        checkSlot(slot)
        return Int(memory.load32(statsWord(slot, WorkerStats.Field.registryLive)))
    }

    /// The partition's high-water mark: a scan of `slot` reads entries [0, highWaterMark).
    public func highWaterMark(slot: Int) -> Int {
        checkSlot(slot)
        return min(capacity, Int(memory.load32(statsWord(slot, WorkerStats.Field.registryHighWater))))
    }

    /// Visits the consistent live entries of one partition until `visit` returns false.
    private func scan(slot: Int, _ visit: (_ id: Int, _ server: Int, _ status: Status) -> Bool) {
        let highWater = highWaterMark(slot: slot)
        var offset = entryOffset(slot: slot, index: 0)
        for _ in 0..<highWater {
            defer { offset += SegmentLayout.entrySize }
            let id = memory.load64(offset)
            if id == 0 { continue }
            let server = memory.load32(offset + 8)
            let rawStatus = memory.load32(offset + 12)
            guard memory.load64(offset) == id, let status = Status(rawValue: rawStatus) else { continue }
            if !visit(Int(truncatingIfNeeded: id), Int(server), status) { return }
        }
    }
}
