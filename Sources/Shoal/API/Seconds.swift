// Durations given in seconds (command lines, configuration files) turned into the nanoseconds the
// options take. Conversion saturates instead of trapping: a program that checked its range first
// loses nothing, and one that did not gets the nearest representable duration, never a crash.

/// Seconds, as people write durations.
public enum Seconds {
    /// `seconds` in nanoseconds: 0 for NaN and anything not above 0, UInt64.max (about 584 years,
    /// which every timeout treats as "never") for anything beyond it or infinite.
    public static func nanoseconds(_ seconds: Double) -> UInt64 {
        guard seconds > 0 else { return 0 }  // also NaN
        let value = seconds * 1e9
        // UInt64(exactly) of a Double is at most 2^64 - 2048; the largest Double below 2^64 fits.
        return value < 18_446_744_073_709_551_616.0 ? UInt64(value) : .max
    }
}
