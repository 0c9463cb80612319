// How often a worker counts its open descriptors for /metrics (`process_open_fds`). The count polls
// every slot of the descriptor table, one socket per client: 1.3-6.8 ms for 10,000 TCP sockets
// (measured on this machine while it ran other loads). Done with the rest of the process sample
// once a second, that was up to 0.7 % of a worker's core at 10,000 clients and 2 % of its CPU in a
// connect storm; at that cost per socket, 54 workers of 18,500 clients (a million) would spend
// 0.13-0.68 CPU-seconds a second counting.
// Each count now waits a thousand times its own duration, so counting never takes more than about
// 0.1 % of the worker's time; a small table takes microseconds and is still counted every second.
// Pure, so the rule is tested without a descriptor table.

/// Decides, at each once-a-second process sample, whether to count the open descriptors again or
/// to report the last count.
struct DescriptorCountSchedule {
    /// Time between counts, in multiples of the last count's duration.
    static let intervalPerCost: UInt64 = 1000

    /// Monotonic nanoseconds before which the last count is reported again (0: count at once).
    private(set) var nextCount: UInt64 = 0

    func isDue(at now: UInt64) -> Bool { now >= nextCount }

    /// Takes the monotonic times at which a count started and ended.
    mutating func counted(from start: UInt64, to end: UInt64) {
        let cost = end >= start ? end - start : 0
        nextCount = end &+ cost.multipliedReportingOverflow(by: Self.intervalPerCost).partialValue
    }
}
