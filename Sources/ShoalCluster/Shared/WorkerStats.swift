// One worker slot's 256-byte statistics block in the shared segment: what /metrics, /healthz and
// the supervisor's watchdog read about a worker without asking it.
#if canImport(Glibc)
import Glibc
#endif

// Layout of a block (offsets from the block's start; all u64 unless noted, every field atomic):
//
//   0    pid                    worker's pid (0: no worker yet)
//   8    generation             reload generation of the worker in the slot
//   16   progress               the worker loop's completions handled plus timers run (it idles
//                               on a timer, so a live loop always moves it; the watchdog reads it)
//   24   accepting              1 while the worker accepts new connections, else 0
//   32   connections            live connections of the worker (signed, stored as its bit pattern)
//   40   messagesIn             monotonic counters, added with relaxed fetch-adds
//   48   messagesOut
//   56   bytesIn
//   64   bytesOut
//   72   drops                  messages dropped by the slow-consumer policy or a full bus
//   80   restarts               written by the supervisor only; survives reset()
//   88   progressSeenNanoseconds  CLOCK_MONOTONIC when the supervisor last saw `progress` move
//                               (or started the worker); written by the supervisor only
//   96   registry high-water u32  owned by Registry: entries [0, hw) of partition `slot` may be live
//   100  registry live u32        owned by Registry: live entries of the partition
//   104  watchdogKills          written by the supervisor only; survives reset()
//   112  busHolds               times a backed-up bus channel made this worker hold its client input
//   120  busMessagesOut         messages this worker wrote to the bus (a sendMany counts once)
//   128  limit counters         one u64 per `WorkerStats.LimitEvent` (offset 128 + 8 × raw value):
//                               what the production limits refused or closed, for /metrics
//   ...  reserved to 256
//
// Writers: the worker in the slot, except `restarts`, `progressSeenNanoseconds`, `watchdogKills`
// (supervisor) and the registry words (see Registry.swift: the owner, and the supervisor's sweep).

/// A view of one 128-byte stats block (layout above). Copies are views of the same memory.
public struct WorkerStats: Sendable {
    enum Field {
        static let pid = 0
        static let generation = 8
        static let progress = 16
        static let accepting = 24
        static let connections = 32
        static let messagesIn = 40
        static let messagesOut = 48
        static let bytesIn = 56
        static let bytesOut = 64
        static let drops = 72
        static let busMessagesOut = 120
        static let busHolds = 112
        static let restarts = 80
        static let progressSeen = 88
        static let watchdogKills = 104
        /// Registry words, not statistics: reset() leaves them alone.
        static let registryHighWater = 96
        static let registryLive = 100
        /// The fields reset() zeroes: the worker's, and when the supervisor last saw it progress.
        static let resettable = [pid, generation, progress, accepting, connections, messagesIn, messagesOut,
                                 bytesIn, bytesOut, drops, progressSeen, busMessagesOut, busHolds]
    }

    let memory: SharedMemory
    /// Byte offset of the block in the segment.
    let offset: Int

    init(memory: SharedMemory, offset: Int) {
        self.memory = memory
        self.offset = offset
    }

    private func load(_ field: Int) -> Int { Int(truncatingIfNeeded: memory.load64(offset + field)) }
    private func store(_ field: Int, _ value: Int) { memory.store64(offset + field, UInt64(truncatingIfNeeded: value)) }

    public var pid: Int {
        get { load(Field.pid) }
        nonmutating set { store(Field.pid, newValue) }
    }

    public var generation: Int {
        get { load(Field.generation) }
        nonmutating set { store(Field.generation, newValue) }
    }

    /// The worker loop's progress counter: completions handled plus timers run. Only its movement
    /// means anything (the supervisor's watchdog); the worker stores it as its loop counts.
    public var progress: UInt64 {
        get { memory.load64(offset + Field.progress) }
        nonmutating set { memory.store64(offset + Field.progress, newValue) }
    }

    /// CLOCK_MONOTONIC (nanoseconds) when the supervisor last saw `progress` move, or started the
    /// worker; the same clock in every process, so /healthz in any worker can say how long ago.
    public var progressSeenNanoseconds: UInt64 {
        get { memory.load64(offset + Field.progressSeen) }
        nonmutating set { memory.store64(offset + Field.progressSeen, newValue) }
    }

    /// CLOCK_MONOTONIC now, in nanoseconds (what `progressSeenNanoseconds` is compared against).
    public static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }

    public var accepting: Bool {
        get { load(Field.accepting) != 0 }
        nonmutating set { store(Field.accepting, newValue ? 1 : 0) }
    }

    public var connections: Int {
        get { load(Field.connections) }
        nonmutating set { store(Field.connections, newValue) }
    }

    /// Adds to the traffic counters (relaxed: nobody synchronises on them). No allocation: hot path.
    public func add(messagesIn: Int = 0, messagesOut: Int = 0, bytesIn: Int = 0, bytesOut: Int = 0, drops: Int = 0,
                    busMessagesOut: Int = 0, busHolds: Int = 0) {
        if messagesIn != 0 { increment(Field.messagesIn, messagesIn) }
        if messagesOut != 0 { increment(Field.messagesOut, messagesOut) }
        if bytesIn != 0 { increment(Field.bytesIn, bytesIn) }
        if bytesOut != 0 { increment(Field.bytesOut, bytesOut) }
        if drops != 0 { increment(Field.drops, drops) }
        if busMessagesOut != 0 { increment(Field.busMessagesOut, busMessagesOut) }
        if busHolds != 0 { increment(Field.busHolds, busHolds) }
    }

    private func increment(_ field: Int, _ amount: Int) {
        _ = memory.fetchAddRelaxed64(offset + field, UInt64(truncatingIfNeeded: amount))
    }

    /// Something a production limit did; each has a counter at 128 + 8 × raw value.
    public enum LimitEvent: Int, CaseIterable, Sendable {
        /// A connection closed with 1008 because its send queue passed maxBackpressure.
        case slowConsumerClose
        /// A message not sent to a connection whose send queue was at maxBackpressure.
        case slowConsumerDrop
        /// An upgrade refused (403) because of its Origin.
        case rejectedOrigin
        /// An upgrade refused (503) because the worker held its maximum of connections.
        case rejectedCapacity
        /// An upgrade refused (429) because its address held its maximum of connections.
        case rejectedPerAddress
        /// A connection closed with 1001 after its idle ping went unanswered.
        case idleTimeout
        /// A connection closed because its PROXY protocol header was missing, malformed or too slow.
        case rejectedProxyHeader

        var offset: Int { 128 + 8 * rawValue }
    }

    /// Adds to a limit counter (relaxed, like the traffic counters).
    public func add(_ event: LimitEvent, _ amount: Int) {
        if amount != 0 { increment(event.offset, amount) }
    }

    public subscript(_ event: LimitEvent) -> Int { load(event.offset) }

    public var messagesIn: Int { load(Field.messagesIn) }
    public var messagesOut: Int { load(Field.messagesOut) }
    public var bytesIn: Int { load(Field.bytesIn) }
    public var bytesOut: Int { load(Field.bytesOut) }
    public var drops: Int { load(Field.drops) }
    public var busMessagesOut: Int { load(Field.busMessagesOut) }
    public var busHolds: Int { load(Field.busHolds) }

    /// Times the supervisor restarted a worker in this slot (written by the supervisor only).
    public var restarts: Int {
        get { load(Field.restarts) }
        nonmutating set { store(Field.restarts, newValue) }
    }

    /// Times the supervisor's watchdog killed this slot's worker for making no progress.
    public var watchdogKills: Int {
        get { load(Field.watchdogKills) }
        nonmutating set { store(Field.watchdogKills, newValue) }
    }

    /// Zeroes every statistic except `restarts` and `watchdogKills` (a new worker in the slot). The registry words
    /// (high-water mark, live count) are the registry's: `Registry.adopt(slot:)` resets those.
    public func reset() {
        for field in Field.resettable { store(field, 0) }
        for event in LimitEvent.allCases { store(event.offset, 0) }
    }
}
