// One worker slot's operator metrics in the shared segment: process figures, closes by code,
// HTTP refusals, and the handshake-latency and message-size histograms. Bytes 256..<1024 of the
// slot's block (WorkerStats holds 0..<256), so any worker's /metrics can answer for all of them.
// The worker adds to its own block where each event happens: one relaxed fetch-add on a line no
// other process writes, no allocation.

import ShoalPosix

// Layout (offsets from the start of this block, i.e. slot block + 256; every field a u64):
//
//   0    cpuMicroseconds        process sample (ProcessSample), stored once a second by the worker
//   8    residentBytes
//   16   openDescriptors
//   24   startMilliseconds      Unix epoch
//   32   queuedSendBytes        gauge: bytes in every send queue of the worker, sampled with the above
//   40   closes                 one counter per `CloseCodeCounter` bucket (11): 40 + 8 × index
//   128  refusals               one counter per `Refusal` (7, room for 8): 128 + 8 × raw value
//   192  handshake histogram    `LogBuckets.handshakeMicroseconds` buckets (11, not cumulative), then
//                               the sum of the observed microseconds: 192 ..< 288
//   288  message-size histogram `LogBuckets.messageBytes` buckets (13), then the byte sum: 288 ..< 400
//   400  handlerSeriesRefused   swift-metrics series the handlers asked for and did not get (table full,
//                               key too long, name reserved or taken by another kind): HandlerSeriesTable
//   408  busHolds               times a backed-up bus channel made this worker hold its client input
//   416  redisDroppedTooLarge   broadcasts and publishes not sent to Redis: beyond what a receiver takes
//                               (the other Redis counters are in WorkerStats, whose block is full)
//   424  reserved to 768
//
// Writer: the worker in the slot. When a new worker takes the slot the supervisor zeroes the
// process figures and the gauge (`resetProcess()`), never the counters: they keep counting for the
// slot, so their cluster-wide sums only grow while the supervisor lives (a sum that fell when one
// worker was replaced would read as a counter reset and make rate() jump).

/// A view of one slot's metrics block (layout above). Copies are views of the same memory.
public struct WorkerMetrics: Sendable {
    public static let size = 768

    enum Field {
        static let cpuMicroseconds = 0
        static let residentBytes = 8
        static let openDescriptors = 16
        static let startMilliseconds = 24
        static let queuedSendBytes = 32
        static let closes = 40
        static let refusals = 128
        static let handshake = 192
        static let messageSize = 288
        static let handlerSeriesRefused = 400
        static let busHolds = 408
        static let redisDroppedTooLarge = 416
    }

    /// Close codes counted on their own; any other code counts as "other".
    public static let countedCloseCodes: [UInt16] = [1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011]

    /// Why a request or connection was refused before it became a WebSocket (the `reason` label).
    /// Some are also counted per worker by a `WorkerStats.LimitEvent`, which a new worker resets;
    /// these never reset.
    public enum Refusal: Int, CaseIterable, Sendable {
        /// A malformed request head or opening handshake (400, or 405, 414, 431, 505 … as the fault says).
        case badRequest
        /// 403: an Origin not allowed, or the program's onConnection refused the client.
        case forbidden
        /// 404: no file or WebSocket server at the path.
        case notFound
        /// 408: a request head not complete in time.
        case requestTimeout
        /// 429: the client's address held its maximum of connections.
        case tooManyFromAddress
        /// 503: the worker held its maximum of connections, its registry share was full, or it was restarting.
        case unavailable
        /// A missing, malformed or slow PROXY protocol header (no HTTP answer: the connection is closed).
        case proxyHeader

        /// The `reason` label.
        public var label: String {
            switch self {
            case .badRequest: "bad_request"
            case .forbidden: "403"
            case .notFound: "404"
            case .requestTimeout: "408"
            case .tooManyFromAddress: "429"
            case .unavailable: "503"
            case .proxyHeader: "proxy_header"
            }
        }
    }

    let memory: SharedMemory
    let offset: Int

    init(memory: SharedMemory, offset: Int) {
        self.memory = memory
        self.offset = offset
    }

    /// A block in private memory, for a web server that runs outside a cluster (ShoalTesting):
    /// the same code records, nobody else reads. The owner frees it.
    public static func detached() -> (metrics: WorkerMetrics, owner: AnyObject) {
        let owner = PrivateMemory(size: size)
        return (WorkerMetrics(memory: owner.memory, offset: 0), owner)
    }

    /// Only the slot's worker, on its loop thread, adds (see Writer above): message sizes are
    /// counted per message, so no locked read-modify-write.
    @inline(__always) private func add(_ field: Int, _ amount: UInt64) {
        memory.addSingleWriter64(offset + field, amount)
    }

    private func load(_ field: Int) -> UInt64 { memory.load64(offset + field) }

    // MARK: Recording (the worker in the slot)

    /// Stores a process sample and the send-queue gauge.
    public func store(_ sample: ProcessSample, queuedSendBytes: Int) {
        ProcessFigures(memory: memory, offset: offset + Field.cpuMicroseconds).store(sample)
        memory.store64(offset + Field.queuedSendBytes, UInt64(max(0, queuedSendBytes)))
    }

    /// Counts a connection's close under its code (the first close frame that crossed, or 1006).
    @inline(__always)
    public func countClose(code: UInt16) {
        add(Field.closes + 8 * Self.closeIndex(code), 1)
    }

    /// The counter index of a close code: its place in `countedCloseCodes`, or the last ("other").
    public static func closeIndex(_ code: UInt16) -> Int {
        countedCloseCodes.firstIndex(of: code) ?? countedCloseCodes.count
    }

    public func count(_ refusal: Refusal) {
        add(Field.refusals + 8 * refusal.rawValue, 1)
    }

    /// One opening handshake, from accept to the 101 written.
    @inline(__always)
    public func observeHandshake(microseconds: UInt64) {
        add(Field.handshake + 8 * LogBuckets.handshakeMicroseconds.index(of: microseconds), 1)
        add(Field.handshake + 8 * LogBuckets.handshakeMicroseconds.count, microseconds)
    }

    /// One message received, of `bytes` payload bytes.
    @inline(__always)
    public func observeMessage(bytes: Int) {
        let size = UInt64(truncatingIfNeeded: bytes)
        add(Field.messageSize + 8 * LogBuckets.messageBytes.index(of: size), 1)
        add(Field.messageSize + 8 * LogBuckets.messageBytes.count, size)
    }

    /// A handler's swift-metrics series that was not recorded.
    public func countRefusedHandlerSeries() {
        add(Field.handlerSeriesRefused, 1)
    }

    /// A bus channel to another worker backed up past its high-water mark: client input is held.
    public func countBusHold() {
        add(Field.busHolds, 1)
    }

    /// Messages the Redis bridge did not send because no receiver would take them.
    public func countRedisDroppedTooLarge(_ count: Int) {
        if count > 0 { add(Field.redisDroppedTooLarge, UInt64(count)) }
    }

    // MARK: Reading (any process)

    public var redisDroppedTooLarge: UInt64 { load(Field.redisDroppedTooLarge) }

    public var busHolds: UInt64 { load(Field.busHolds) }

    public var refusedHandlerSeries: UInt64 { load(Field.handlerSeriesRefused) }

    public var process: ProcessSample { ProcessFigures(memory: memory, offset: offset + Field.cpuMicroseconds).sample }
    public var queuedSendBytes: UInt64 { load(Field.queuedSendBytes) }

    /// Closes per `countedCloseCodes` entry, then "other".
    public var closes: [UInt64] { (0...Self.countedCloseCodes.count).map { load(Field.closes + 8 * $0) } }

    public subscript(_ refusal: Refusal) -> UInt64 { load(Field.refusals + 8 * refusal.rawValue) }

    public var handshakes: HistogramCounts { histogram(at: Field.handshake, LogBuckets.handshakeMicroseconds) }
    public var messageSizes: HistogramCounts { histogram(at: Field.messageSize, LogBuckets.messageBytes) }

    private func histogram(at field: Int, _ buckets: LogBuckets) -> HistogramCounts {
        HistogramCounts(buckets: (0..<buckets.count).map { load(field + 8 * $0) }, sum: load(field + 8 * buckets.count))
    }

    /// Zeroes the process figures and the send-queue gauge (a new worker in the slot); the
    /// counters and histograms go on.
    public func resetProcess() {
        store(ProcessSample(), queuedSendBytes: 0)
    }
}

/// A histogram's buckets (not cumulative, +Inf last) and the sum of what was observed.
public struct HistogramCounts: Sendable, Equatable {
    public var buckets: [UInt64]
    public var sum: UInt64

    public init(buckets: [UInt64], sum: UInt64) {
        self.buckets = buckets
        self.sum = sum
    }

    /// Adds another worker's counts (cluster-wide totals).
    public static func + (a: HistogramCounts, b: HistogramCounts) -> HistogramCounts {
        HistogramCounts(buckets: zip(a.buckets, b.buckets).map { $0 &+ $1 }, sum: a.sum &+ b.sum)
    }
}

/// Four u64 words holding a `ProcessSample` (a worker's metrics block, the segment header for the
/// supervisor): CPU µs, resident bytes, open descriptors, start ms.
struct ProcessFigures {
    static let size = 32
    let memory: SharedMemory
    let offset: Int

    func store(_ sample: ProcessSample) {
        memory.store64(offset, sample.cpuMicroseconds)
        memory.store64(offset + 8, sample.residentBytes)
        memory.store64(offset + 16, sample.openDescriptors)
        memory.store64(offset + 24, sample.startMilliseconds)
    }

    var sample: ProcessSample {
        ProcessSample(cpuMicroseconds: memory.load64(offset), residentBytes: memory.load64(offset + 8),
                      openDescriptors: memory.load64(offset + 16), startMilliseconds: memory.load64(offset + 24))
    }
}
