// The clock of the idle timeout: loop time in milliseconds, 32 bits wide, so that each connection
// keeps its idle stamp in 4 bytes rather than a 64-bit nanosecond time. A millisecond is far finer
// than the idle sweep (50 ms at the finest), so the timeout's behaviour does not change.

/// Loop time in milliseconds, wrapping every 2^32 ms (49.7 days). Intervals are taken with wrapping
/// subtraction, exact (to the millisecond) for anything shorter than that; a timeout configured
/// longer than 49.7 days is measured as 49.7 days.
enum IdleClock {
    /// The clock's reading at loop time `nanoseconds`.
    @inline(__always)
    static func milliseconds(_ nanoseconds: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: nanoseconds / 1_000_000)
    }

    /// A timeout in the clock's unit, rounded up to whole milliseconds and capped at 2^32 - 1.
    static func duration(_ nanoseconds: UInt64) -> UInt32 {
        let (whole, part) = nanoseconds.quotientAndRemainder(dividingBy: 1_000_000)
        return UInt32(clamping: whole + (part == 0 ? 0 : 1))
    }
}
