// An accept that fails for want of descriptors (EMFILE, ENFILE) fails again at every retry, ten
// times a second per worker, for as long as the shortage lasts: 717 identical log lines in one
// million-connection run. The log and onError hear of the first, then of at most one every 10 s,
// with how many were left out in between.

/// When a failure that repeats is reported: the first at once, then at most one per `interval`.
struct RepeatedFailureReport {
    /// Nanoseconds between two reports.
    static let interval: UInt64 = 10_000_000_000
    private var lastReport: UInt64?
    private var unreported = 0

    /// A failure at `now` (the loop's clock, nanoseconds): nil keeps it quiet; otherwise report it,
    /// with the number of failures left unreported since the last report.
    mutating func failed(now: UInt64) -> Int? {
        if let lastReport, now &- lastReport < Self.interval {
            unreported += 1
            return nil
        }
        lastReport = now
        defer { unreported = 0 }
        return unreported
    }
}
