// Options are `Duration`s (`.seconds(30)`); the loop's timers count nanoseconds in a UInt64.

extension Duration {
    /// Whole nanoseconds: 0 for a negative duration, UInt64.max for one longer than 584 years.
    var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (total, overflowAgain) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflowAgain ? .max : total
    }
}
