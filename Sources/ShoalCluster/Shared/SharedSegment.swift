// The cluster's shared-memory segment: one memfd, mapped MAP_SHARED by the supervisor and every
// worker, with a fixed layout (nginx's shared zone): the connection-id counter, per-worker
// statistics and the registry of live connections. The only file of ShoalCluster with raw pointers.
#if canImport(Glibc)
import Glibc
#endif
import CShoalSystem
import ShoalPosix

// Layout (all offsets in bytes from the start of the mapping; every integer little-endian, native):
//
//   offset                      size   holds
//   0                           128    Header
//     0    magic            u64          "SHOALSEG" in memory order (SharedSegment.magic); written last
//     8    version          u32          SharedSegment.version; attach refuses any other
//     12   workerSlots      u32          number of stats blocks and registry partitions (>= 1)
//     16   registryCapacity u32          registry entries PER SLOT (>= 1)
//     20   (padding)        u32          zero
//     24   segmentSize      u64          bytes of the memfd (the layout's end rounded up to the page size)
//     32   supervisorPID    u32          pid of the process that created the segment
//     36   (padding)        u32          zero
//     40   serverSetup      u64          the WebSocket servers workers create (ServerTable.swift)
//     48   terminatedServers u64         bit i: server i was terminated (ServerTable.swift)
//     56   instanceID       u64          random, never 0: names this instance (supervisor run) on Redis
//     64   supervisorProcess 4 × u64     the supervisor's ProcessSample (CPU µs, RSS, fds, start ms),
//                                        stored by it once a second (WorkerMetrics.swift, ProcessFigures)
//     96   reserved         32 bytes     zero
//   128                         128    connection-id counter, u64 at 128, alone on its line (holds the last
//                                      id handed out: fetch-add 1, first id is 1); rest of the line zero
//   256                         1024*W per-slot blocks (W = workerSlots), 1024 bytes each:
//                                      0..<256 WorkerStats (field offsets in WorkerStats.swift, including
//                                      the registry's per-partition high-water mark and live count at
//                                      bytes 96 and 100), 256..<1024 WorkerMetrics (WorkerMetrics.swift)
//   256 + 1024*W                8192*W HandlerSeriesTable[W]: the swift-metrics series of each slot's
//                                      handlers, 64 entries of 128 bytes (HandlerSeriesTable.swift)
//   256 + 9216*W                16*W*C Registry: W partitions (partition p = worker slot p) of C entries
//                                      (C = registryCapacity), 16 bytes each; entry layout in Registry.swift
//   256 + 9216*W + 16*W*C              end of the layout; segmentSize rounds it up to the page size
//
// Every block starts on a 128-byte boundary (two 64-byte cache lines, as nginx pads its counter,
// because adjacent-line prefetching pairs lines): the stats of two workers never share a line, nor
// the hot counter anything. Partitions are 32*C bytes, so they share a line only at their edges.
// Keep SegmentLayout below in sync with this table (SharedSegmentTests read the bytes at these offsets).

/// The offsets of the table above, for code and tests.
public enum SegmentLayout {
    public static let headerSize = 128
    public static let magicOffset = 0
    public static let versionOffset = 8
    public static let workerSlotsOffset = 12
    public static let registryCapacityOffset = 16
    public static let segmentSizeOffset = 24
    public static let supervisorPIDOffset = 32
    /// The servers' setup signature and terminated flags (ServerTable.swift); zero in a new segment,
    /// so a segment of the previous layout (reserved bytes) reads as "nothing yet".
    public static let serverSetupOffset = 40
    public static let terminatedServersOffset = 48
    /// This instance's random id (the Redis link skips its own messages by it); 0 in a segment of
    /// the previous layout.
    public static let instanceIDOffset = 56
    /// The connection-id counter, alone on its 128-byte line.
    public static let counterOffset = 128
    /// The first WorkerStats block.
    public static let statsOffset = 256
    /// The supervisor's process figures in the header.
    public static let supervisorProcessOffset = 64
    /// Bytes per slot: its WorkerStats block, then its WorkerMetrics block.
    public static let statsStride = 1024
    /// Where a slot's WorkerMetrics block starts within the slot's bytes.
    public static let metricsOffsetInSlot = 256
    /// Bytes per registry entry.
    public static let entrySize = 16

    /// Where slot 0's handler-series table starts.
    public static func handlerSeriesOffset(workerSlots: Int) -> Int { statsOffset + statsStride * workerSlots }

    /// Where the registry (partition 0) starts.
    public static func registryOffset(workerSlots: Int) -> Int {
        handlerSeriesOffset(workerSlots: workerSlots) + HandlerSeriesTable.size * workerSlots
    }

    /// Where partition `slot` starts.
    public static func partitionOffset(slot: Int, workerSlots: Int, registryCapacity: Int) -> Int {
        registryOffset(workerSlots: workerSlots) + slot * registryCapacity * entrySize
    }

    /// The end of the layout (before rounding up to the page size).
    public static func layoutEnd(workerSlots: Int, registryCapacity: Int) -> Int {
        partitionOffset(slot: workerSlots, workerSlots: workerSlots, registryCapacity: registryCapacity)
    }
}

/// Why an inherited descriptor cannot be used as the cluster's segment.
public struct SegmentError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Shorter than its header or than the layout its header describes.
        case tooSmall
        /// The first 8 bytes are not "SHOALSEG": not a Shoal segment at all.
        case wrongMagic
        /// A Shoal segment of another layout version (a binary of another release).
        case versionMismatch
        /// Magic and version right, but the header's fields are impossible.
        case corruptHeader
    }

    public let kind: Kind
    public let descriptor: Int32
    /// What was wrong, in words.
    public let detail: String

    public var description: String { "shared segment (fd \(descriptor)) rejected: \(detail)" }
}

/// The cluster's shared-memory segment (layout: the table at the top of this file).
///
/// Ownership: the supervisor creates it and keeps `descriptor` open to hand to every worker it
/// spawns; a worker attaches the descriptor it inherited. The mapping lives until `unmap()`, which
/// nothing calls while a `WorkerStats` or the `registry` may still be used (the views hold the
/// mapping's address, not a reference to this object).
public final class SharedSegment: @unchecked Sendable {
    /// "SHOALSEG" as it reads in memory (little-endian u64), so `hexdump` of the memfd shows it.
    public static let magic: UInt64 = {
        var value: UInt64 = 0
        for (index, byte) in "SHOALSEG".utf8.enumerated() { value |= UInt64(byte) << (8 * UInt64(index)) }
        return value
    }()
    /// Bump on any change to the layout table.
    public static let version: UInt32 = 5

    public let descriptor: Int32
    public let workerSlots: Int
    /// Registry entries per worker slot.
    public let registryCapacity: Int
    /// Bytes of the segment (header's segmentSize).
    public let segmentSize: Int
    public let registry: Registry
    /// What every worker must agree on about its WebSocket servers.
    public var servers: ServerTable { ServerTable(memory: memory) }
    let memory: SharedMemory

    private init(descriptor: Int32, memory: SharedMemory, workerSlots: Int, registryCapacity: Int, segmentSize: Int) {
        self.descriptor = descriptor
        self.memory = memory
        self.workerSlots = workerSlots
        self.registryCapacity = registryCapacity
        self.segmentSize = segmentSize
        registry = Registry(memory: memory, workerSlots: workerSlots, capacity: registryCapacity)
    }

    /// Creates the memfd (name "shoal-segment", close-on-exec: pass it to workers with a dup2 file
    /// action), sizes it, maps it and writes the header. `registryCapacity` counts entries PER SLOT.
    public static func create(workerSlots: Int, registryCapacity: Int) throws(SystemError) -> SharedSegment {
        precondition(workerSlots >= 1 && workerSlots <= Int(UInt32.max), "workerSlots must be >= 1")
        precondition(registryCapacity >= 1 && registryCapacity <= Int(UInt32.max), "registryCapacity must be >= 1")
        let page = max(4096, sysconf(Int32(_SC_PAGESIZE)))
        let end = SegmentLayout.layoutEnd(workerSlots: workerSlots, registryCapacity: registryCapacity)
        let size = (end + page - 1) / page * page

        let fd = shoal_memfd_create("shoal-segment")
        guard fd >= 0 else { throw SystemError.last("memfd_create") }
        do {
            _ = try retryingOnInterrupt("ftruncate") { ftruncate(fd, off_t(size)) }
            let memory = try SharedMemory.map(descriptor: fd, length: size)
            // The memfd starts zeroed: counter 0 (first id 1), empty stats, every entry free.
            memory.store32(SegmentLayout.versionOffset, version)
            memory.store32(SegmentLayout.workerSlotsOffset, UInt32(workerSlots))
            memory.store32(SegmentLayout.registryCapacityOffset, UInt32(registryCapacity))
            memory.store64(SegmentLayout.segmentSizeOffset, UInt64(size))
            memory.store32(SegmentLayout.supervisorPIDOffset, UInt32(bitPattern: getpid()))
            memory.store64(SegmentLayout.instanceIDOffset, UInt64.random(in: 1...UInt64.max))
            memory.store64(SegmentLayout.magicOffset, magic)
            return SharedSegment(
                descriptor: fd, memory: memory, workerSlots: workerSlots, registryCapacity: registryCapacity,
                segmentSize: size)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Maps an inherited segment after checking its header: throws `SegmentError` (wrong magic,
    /// version mismatch, too small, corrupt header) or `SystemError` (fstat, mmap).
    /// The segment does not own `descriptor` more than the caller says: `closeDescriptor()` closes it.
    public static func attach(descriptor: Int32) throws -> SharedSegment {
        func reject(_ kind: SegmentError.Kind, _ detail: String) -> SegmentError {
            SegmentError(kind: kind, descriptor: descriptor, detail: detail)
        }
        var info = stat()
        _ = try retryingOnInterrupt("fstat") { fstat(descriptor, &info) }
        let fileSize = Int(info.st_size)
        guard fileSize >= SegmentLayout.headerSize else {
            throw reject(.tooSmall, "\(fileSize) bytes, smaller than the \(SegmentLayout.headerSize)-byte header")
        }
        let memory = try SharedMemory.map(descriptor: descriptor, length: fileSize)
        do {
            let foundMagic = memory.load64(SegmentLayout.magicOffset)
            guard foundMagic == magic else {
                throw reject(.wrongMagic, "not a Shoal segment: magic 0x\(String(foundMagic, radix: 16)), expected \"SHOALSEG\"")
            }
            let foundVersion = memory.load32(SegmentLayout.versionOffset)
            guard foundVersion == version else {
                throw reject(.versionMismatch, "layout version \(foundVersion), this binary needs version \(version)")
            }
            let slots = Int(memory.load32(SegmentLayout.workerSlotsOffset))
            let capacity = Int(memory.load32(SegmentLayout.registryCapacityOffset))
            let size = Int(memory.load64(SegmentLayout.segmentSizeOffset))
            guard slots >= 1, capacity >= 1 else {
                throw reject(.corruptHeader, "header says \(slots) worker slots and \(capacity) registry entries per slot")
            }
            let end = SegmentLayout.layoutEnd(workerSlots: slots, registryCapacity: capacity)
            guard size >= end else {
                throw reject(.corruptHeader, "header's segmentSize \(size) is below the \(end) bytes its layout needs")
            }
            guard fileSize >= size else {
                throw reject(.tooSmall, "\(fileSize) bytes, header says \(size)")
            }
            return SharedSegment(
                descriptor: descriptor, memory: memory, workerSlots: slots, registryCapacity: capacity, segmentSize: size)
        } catch {
            memory.unmap()
            throw error
        }
    }

    /// This instance's id, the same in every worker of one supervisor run (random: two hosts
    /// never share one in practice).
    public var instanceID: UInt64 { memory.load64(SegmentLayout.instanceIDOffset) }

    /// The pid of the process that created the segment.
    public var supervisorPID: Int { Int(memory.load32(SegmentLayout.supervisorPIDOffset)) }

    /// Next connection id: atomic fetch-add on the shared counter; unique for the segment's life
    /// (across worker restarts). The first is 1.
    public func nextConnectionID() -> Int {
        Int(truncatingIfNeeded: memory.fetchAdd64(SegmentLayout.counterOffset, 1) &+ 1)
    }

    /// The last id handed out (0 before the first), for metrics and tests.
    public var lastConnectionID: Int { Int(truncatingIfNeeded: memory.load64(SegmentLayout.counterOffset)) }

    /// The statistics block of worker slot `slot`.
    public func stats(slot: Int) -> WorkerStats {
        precondition(slot >= 0 && slot < workerSlots, "worker slot \(slot) out of 0..<\(workerSlots)")
        return WorkerStats(memory: memory, offset: SegmentLayout.statsOffset + slot * SegmentLayout.statsStride)
    }

    /// The operator-metrics block of worker slot `slot`.
    public func metrics(slot: Int) -> WorkerMetrics {
        precondition(slot >= 0 && slot < workerSlots, "worker slot \(slot) out of 0..<\(workerSlots)")
        return WorkerMetrics(memory: memory,
                             offset: SegmentLayout.statsOffset + slot * SegmentLayout.statsStride + SegmentLayout.metricsOffsetInSlot)
    }

    /// The swift-metrics series of worker slot `slot`'s handlers.
    public func handlerSeries(slot: Int) -> HandlerSeriesTable {
        precondition(slot >= 0 && slot < workerSlots, "worker slot \(slot) out of 0..<\(workerSlots)")
        return HandlerSeriesTable(memory: memory, offset: SegmentLayout.handlerSeriesOffset(workerSlots: workerSlots)
                                    + slot * HandlerSeriesTable.size)
    }

    /// The supervisor's process figures (it stores them once a second; zero before the first).
    public var supervisorProcess: ProcessSample {
        get { ProcessFigures(memory: memory, offset: SegmentLayout.supervisorProcessOffset).sample }
        set { ProcessFigures(memory: memory, offset: SegmentLayout.supervisorProcessOffset).store(newValue) }
    }

    /// Unmaps the segment (tests, shutdown). Nothing may use this segment, its stats or its registry after.
    public func unmap() { memory.unmap() }

    /// Closes `descriptor` (the mapping stays valid until `unmap()`).
    public func closeDescriptor() { Glibc.close(descriptor) }
}

/// The mapping, and every access to it: atomic loads (acquire), stores (release) and fetch-adds at
/// byte offsets, through the C shims (Swift's `Atomic` cannot live at an address in a mapping).
/// Offsets are checked in debug builds: aligned to the access size and inside the mapping.
struct SharedMemory: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let length: Int

    static func map(descriptor: Int32, length: Int) throws(SystemError) -> SharedMemory {
        let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0)
        guard let address, address != UnsafeMutableRawPointer(bitPattern: -1) else { throw SystemError.last("mmap") }
        return SharedMemory(base: address, length: length)
    }

    func unmap() { munmap(base, length) }

    @inline(__always) private func word64(_ offset: Int) -> UnsafeMutablePointer<UInt64> {
        assert(offset >= 0 && offset + 8 <= length && offset % 8 == 0, "bad u64 offset \(offset)")
        return (base + offset).assumingMemoryBound(to: UInt64.self)
    }

    @inline(__always) private func word32(_ offset: Int) -> UnsafeMutablePointer<UInt32> {
        assert(offset >= 0 && offset + 4 <= length && offset % 4 == 0, "bad u32 offset \(offset)")
        return (base + offset).assumingMemoryBound(to: UInt32.self)
    }

    @inline(__always) func load64(_ offset: Int) -> UInt64 { shoal_atomic_load_u64(word64(offset)) }
    @inline(__always) func store64(_ offset: Int, _ value: UInt64) { shoal_atomic_store_u64(word64(offset), value) }
    /// Sequentially consistent; returns the previous value.
    @inline(__always) func fetchAdd64(_ offset: Int, _ value: UInt64) -> UInt64 {
        shoal_atomic_fetch_add_u64(word64(offset), value)
    }
    /// Relaxed: for counters nobody synchronises on (statistics).
    @inline(__always) func fetchAddRelaxed64(_ offset: Int, _ value: UInt64) -> UInt64 {
        shoal_atomic_fetch_add_relaxed_u64(word64(offset), value)
    }
    /// For a counter with one writer (a worker's own metrics): no locked instruction on the hot path.
    @inline(__always) func addSingleWriter64(_ offset: Int, _ value: UInt64) {
        shoal_atomic_add_single_writer_u64(word64(offset), value)
    }
    /// Sequentially consistent compare-and-swap; true when `expected` was there and `desired` is now.
    @inline(__always) func compareExchange64(_ offset: Int, expected: UInt64, desired: UInt64) -> Bool {
        shoal_atomic_cas_u64(word64(offset), expected, desired) != 0
    }
    @inline(__always) func load32(_ offset: Int) -> UInt32 { shoal_atomic_load_u32(word32(offset)) }
    @inline(__always) func store32(_ offset: Int, _ value: UInt32) { shoal_atomic_store_u32(word32(offset), value) }
}
