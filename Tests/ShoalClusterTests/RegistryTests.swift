// The registry of live connections: owner-side insert/setStatus/remove, bounded partitions, the
// readers' filters and high-water bound, the supervisor's sweep, a new owner's adopt, and readers
// scanning while owners write.
import ShoalTestSupport
import Foundation
import Glibc
import ShoalCluster
import Testing

@Suite("Registry of live connections")
struct RegistryTests {
    /// Every (id, slot, status) forEach reports for `server`.
    private func listed(_ registry: Registry, server: Int, excludingSlot: Int? = nil) -> Set<Listed> {
        var result: Set<Listed> = []
        registry.forEach(server: server, excludingSlot: excludingSlot) { id, slot, status in
            result.insert(Listed(id: id, slot: slot, status: status))
        }
        return result
    }

    private struct Listed: Hashable {
        let id: Int
        let slot: Int
        let status: Registry.Status
    }

    @Test("an inserted entry is visible with its status until it is removed")
    func insertSetStatusRemove() throws {
        let segment = try SharedSegment.create(workerSlots: 2, registryCapacity: 8)
        defer { segment.unmap(); segment.closeDescriptor() }
        let registry = segment.registry

        let entry = try #require(registry.insert(id: 5, server: 1, slot: 0))
        #expect(entry.slot == 0 && entry.index == 0 && entry.id == 5)
        #expect(registry.status(id: 5, slot: 0) == .connected)
        #expect(registry.status(id: 5, slot: 1) == nil)
        #expect(registry.count(server: 1, excludingSlot: nil) == 1)
        #expect(registry.liveCount(slot: 0) == 1 && registry.liveCount(slot: 1) == 0)

        registry.setStatus(entry, .closing)
        #expect(registry.status(id: 5, slot: 0) == .closing)
        #expect(listed(registry, server: 1) == [Listed(id: 5, slot: 0, status: .closing)])

        registry.remove(entry)
        #expect(registry.status(id: 5, slot: 0) == nil)
        #expect(registry.count(server: 1, excludingSlot: nil) == 0)
        #expect(registry.liveCount(slot: 0) == 0)
        registry.remove(entry)  // twice: nothing
        #expect(registry.liveCount(slot: 0) == 0)
    }

    @Test("a removed entry's index is reused before the partition grows")
    func reusesFreedIndices() throws {
        let segment = try SharedSegment.create(workerSlots: 1, registryCapacity: 8)
        defer { segment.unmap(); segment.closeDescriptor() }
        let registry = segment.registry
        let entries = try (1...3).map { try #require(registry.insert(id: $0, server: 0, slot: 0)) }
        #expect(entries.map(\.index) == [0, 1, 2])
        registry.remove(entries[1])
        let reused = try #require(registry.insert(id: 4, server: 0, slot: 0))
        #expect(reused.index == 1)
        #expect(registry.highWaterMark(slot: 0) == 3)
        #expect(registry.liveCount(slot: 0) == 3)
    }

    @Test("a full partition refuses the insert and leaves its neighbours intact")
    func fullPartition() throws {
        let segment = try SharedSegment.create(workerSlots: 3, registryCapacity: 4)
        defer { segment.unmap(); segment.closeDescriptor() }
        let registry = segment.registry
        _ = try #require(registry.insert(id: 100, server: 1, slot: 0))
        _ = try #require(registry.insert(id: 300, server: 1, slot: 2))
        var middle: [Registry.Entry] = []
        for id in 200..<204 { middle.append(try #require(registry.insert(id: id, server: 1, slot: 1))) }
        let before = readBytes(segment.descriptor, at: 0, count: segment.segmentSize)

        #expect(registry.insert(id: 204, server: 1, slot: 1) == nil)
        #expect(registry.insert(id: 205, server: 2, slot: 1) == nil)
        #expect(readBytes(segment.descriptor, at: 0, count: segment.segmentSize) == before, "no byte changed")
        #expect(listed(registry, server: 1) == Set(
            [Listed(id: 100, slot: 0, status: .connected), Listed(id: 300, slot: 2, status: .connected)]
                + (200..<204).map { Listed(id: $0, slot: 1, status: .connected) }))
        #expect(registry.liveCount(slot: 1) == 4 && registry.highWaterMark(slot: 1) == 4)

        registry.remove(middle[2])
        let again = try #require(registry.insert(id: 206, server: 1, slot: 1))
        #expect(again.index == 2)
        #expect(registry.insert(id: 207, server: 1, slot: 1) == nil)
        #expect(registry.status(id: 100, slot: 0) == .connected && registry.status(id: 300, slot: 2) == .connected)
    }

    @Test("forEach reports only the server asked for and skips the excluded slot")
    func forEachFilters() throws {
        let segment = try SharedSegment.create(workerSlots: 3, registryCapacity: 8)
        defer { segment.unmap(); segment.closeDescriptor() }
        let registry = segment.registry
        var id = 0
        var closing: [Registry.Entry] = []
        for slot in 0..<3 {
            for server in 0..<3 {
                id += 1
                let entry = try #require(registry.insert(id: id, server: server, slot: slot))
                if slot == 2 { closing.append(entry) }
            }
        }
        for entry in closing { registry.setStatus(entry, .closing) }
        // ids: slot 0 → 1, 2, 3; slot 1 → 4, 5, 6; slot 2 → 7, 8, 9; server = (id - 1) % 3.
        #expect(listed(registry, server: 1) == [
            Listed(id: 2, slot: 0, status: .connected), Listed(id: 5, slot: 1, status: .connected),
            Listed(id: 8, slot: 2, status: .closing),
        ])
        #expect(listed(registry, server: 1, excludingSlot: 1) == [
            Listed(id: 2, slot: 0, status: .connected), Listed(id: 8, slot: 2, status: .closing),
        ])
        #expect(listed(registry, server: 0, excludingSlot: 0).map(\.id).sorted() == [4, 7])
        #expect(listed(registry, server: 3).isEmpty)
        #expect(registry.count(server: 2, excludingSlot: nil) == 3)
        #expect(registry.count(server: 2, excludingSlot: 2) == 2)
    }

    @Test("sweep clears a dead worker's slot and nothing else")
    func sweepClearsSlot() throws {
        let segment = try SharedSegment.create(workerSlots: 2, registryCapacity: 16)
        defer { segment.unmap(); segment.closeDescriptor() }
        let registry = segment.registry
        for id in 1...5 { _ = try #require(registry.insert(id: id, server: 0, slot: 0)) }
        for id in 6...15 { _ = try #require(registry.insert(id: id, server: 0, slot: 1)) }

        registry.sweep(slot: 1)
        #expect(listed(registry, server: 0).map(\.id).sorted() == Array(1...5))
        #expect(registry.liveCount(slot: 1) == 0 && registry.highWaterMark(slot: 1) == 0)
        #expect(registry.liveCount(slot: 0) == 5 && registry.highWaterMark(slot: 0) == 5)
        #expect(registry.status(id: 6, slot: 1) == nil)
        let partition = SegmentLayout.partitionOffset(slot: 1, workerSlots: 2, registryCapacity: 16)
        for index in 0..<16 { #expect(readU64(segment.descriptor, at: partition + 16 * index) == 0) }
    }

    @Test("adopt gives a new owner an empty partition that fills from index 0 again")
    func adoptResets() throws {
        let segment = try SharedSegment.create(workerSlots: 2, registryCapacity: 4)
        defer { segment.unmap(); segment.closeDescriptor() }
        let registry = segment.registry
        let old = try (1...4).map { try #require(registry.insert(id: $0, server: 0, slot: 1)) }
        registry.remove(old[3])
        registry.remove(old[1])
        _ = try #require(registry.insert(id: 50, server: 0, slot: 0))

        // The worker in slot 1 died: the supervisor sweeps, the next worker adopts.
        registry.sweep(slot: 1)
        registry.adopt(slot: 1)
        #expect(registry.highWaterMark(slot: 1) == 0 && registry.liveCount(slot: 1) == 0)
        let fresh = try (5...8).map { try #require(registry.insert(id: $0, server: 0, slot: 1)) }
        #expect(fresh.map(\.index) == [0, 1, 2, 3])
        #expect(registry.insert(id: 9, server: 0, slot: 1) == nil)

        // A handle from before the sweep names a reused entry: it does nothing.
        registry.remove(old[0])
        registry.setStatus(old[2], .closing)
        #expect(registry.status(id: 5, slot: 1) == .connected && registry.status(id: 7, slot: 1) == .connected)
        #expect(registry.liveCount(slot: 1) == 4)

        // Adopt without a sweep first (the segment was inherited as is) also starts empty.
        registry.adopt(slot: 1)
        #expect(listed(registry, server: 0).map(\.id) == [50])
        #expect(try #require(registry.insert(id: 10, server: 0, slot: 1)).index == 0)
    }

    @Test("readers scan a partition only up to its high-water mark")
    func highWaterBoundsScan() throws {
        let segment = try SharedSegment.create(workerSlots: 1, registryCapacity: 64)
        defer { segment.unmap(); segment.closeDescriptor() }
        let registry = segment.registry
        let entries = try (1...3).map { try #require(registry.insert(id: $0, server: 1, slot: 0)) }
        #expect(registry.highWaterMark(slot: 0) == 3)
        registry.remove(entries[2])
        #expect(registry.highWaterMark(slot: 0) == 3, "removal does not lower the mark")

        // Forge a live-looking entry at index 10, past the mark: no reader may see it.
        let fd = segment.descriptor
        let forged = SegmentLayout.partitionOffset(slot: 0, workerSlots: 1, registryCapacity: 64) + 10 * 16
        writeInteger(fd, at: forged + 8, 1, size: 4)
        writeInteger(fd, at: forged + 12, UInt64(Registry.Status.connected.rawValue), size: 4)
        writeInteger(fd, at: forged, 999, size: 8)
        #expect(listed(registry, server: 1).map(\.id).sorted() == [1, 2])
        #expect(registry.status(id: 999, slot: 0) == nil)
        #expect(registry.count(server: 1, excludingSlot: nil) == 2)

        // Raise the mark past it (bytes 96...99 of the slot's stats block) and the scan reaches it.
        writeInteger(fd, at: SegmentLayout.statsOffset + 96, 11, size: 4)
        #expect(registry.highWaterMark(slot: 0) == 11)
        #expect(listed(registry, server: 1).map(\.id).sorted() == [1, 2, 999])
        #expect(registry.status(id: 999, slot: 0) == .connected)
    }

    @Test("readers scanning while owners insert and remove never see an id never inserted or a wrong server")
    func concurrentReadersAndWriters() throws {
        let segment = try SharedSegment.create(workerSlots: 2, registryCapacity: 64)
        defer { segment.unmap(); segment.closeDescriptor() }
        let registry = segment.registry
        let operations = 100_000
        let bases = [0, 10_000_000]
        let claimed = [SharedCounter(), SharedCounter()]  // highest k whose id an owner may have published
        let finished = SharedCounter()
        let refusedInserts = SharedCounter()
        let report = Locked<(scans: Int, seen: Int, violations: [String])>((0, 0, []))

        /// Owner of `slot`: inserts ids base+1, base+2, ... (server = id % 3), marks some closing,
        /// removes pseudo-randomly so indices are reused, at most 48 live at once.
        @Sendable func owner(_ slot: Int) {
            var live: [Registry.Entry] = []
            var random: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ UInt64(slot)
            func next() -> Int {
                random = random &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Int(random >> 33)
            }
            for k in 1...operations {
                let id = bases[slot] + k
                claimed[slot].store(k)
                guard let entry = registry.insert(id: id, server: id % 3, slot: slot) else {
                    refusedInserts.add(1)
                    continue
                }
                live.append(entry)
                if next() % 4 == 0 { registry.setStatus(entry, .closing) }
                while live.count > 48 || (!live.isEmpty && next() % 2 == 0) {
                    let victim = next() % live.count
                    registry.remove(live[victim])
                    live.swapAt(victim, live.count - 1)
                    live.removeLast()
                }
            }
            for entry in live { registry.remove(entry) }
            finished.add(1)
        }

        @Sendable func reader() {
            var scans = 0
            var seen = 0
            var violations: [String] = []
            while finished.load() < 2 {
                for server in 0..<3 {
                    let excluded: Int? = scans % 3 == 2 ? scans % 2 : nil
                    registry.forEach(server: server, excludingSlot: excluded) { id, slot, status in
                        seen += 1
                        guard violations.count < 10 else { return }
                        let k = id - bases[slot]
                        if slot == excluded { violations.append("id \(id) from excluded slot \(slot)") }
                        if k < 1 || k > claimed[slot].load() {
                            violations.append("id \(id) in slot \(slot) was never inserted there")
                        }
                        if id % 3 != server { violations.append("id \(id) listed under server \(server)") }
                        if status != .connected && status != .closing { violations.append("status \(status)") }
                    }
                }
                scans += 1
            }
            report.withLock { $0 = (scans, seen, violations) }
        }

        runOnThreads([{ owner(0) }, { owner(1) }, { reader() }])
        let result = report.withLock { $0 }
        #expect(result.violations.isEmpty, "\(result.violations)")
        #expect(result.scans > 0 && result.seen > 0, "the reader overlapped the writers")
        #expect(refusedInserts.load() == 0)
        #expect(registry.liveCount(slot: 0) == 0 && registry.liveCount(slot: 1) == 0)
        #expect(registry.count(server: 0, excludingSlot: nil) + registry.count(server: 1, excludingSlot: nil)
            + registry.count(server: 2, excludingSlot: nil) == 0)
    }
}
