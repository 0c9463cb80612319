// Wall-clock time as log stores want it, without Foundation (which would bring ICU into the binary
// for one date format).
#if canImport(Glibc)
import Glibc
#endif

public enum UTCTimestamp {
    /// Now, as RFC 3339 UTC with milliseconds: "2026-12-06T14:26:13.123Z".
    public static func now() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return format(seconds: Int(time.tv_sec), milliseconds: Int(time.tv_nsec) / 1_000_000)
    }

    /// `seconds` since the Unix epoch plus `milliseconds`, as RFC 3339 UTC.
    public static func format(seconds: Int, milliseconds: Int) -> String {
        var whole = time_t(seconds)
        var parts = tm()
        gmtime_r(&whole, &parts)
        func padded(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return padded(parts.tm_year + 1900, 4) + "-" + padded(parts.tm_mon + 1, 2) + "-" + padded(parts.tm_mday, 2)
            + "T" + padded(parts.tm_hour, 2) + ":" + padded(parts.tm_min, 2) + ":" + padded(parts.tm_sec, 2)
            + "." + padded(Int32(milliseconds), 3) + "Z"
    }
}
