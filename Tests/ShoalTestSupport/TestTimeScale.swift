// How long a test waits for something that must happen (a socket closing, a task running).
// Under a sanitizer the code runs many times slower (ThreadSanitizer 5-15x, worse on a loaded
// machine), so a bound sized for a plain build runs out while the behaviour is right.
// `scripts/sanitizers.sh` sets SHOAL_TEST_TIME_SCALE; every bound on a wait is multiplied by it.
// The assertions stay the same; only the time allowed to reach them grows.
import Foundation

public enum TestTime {
    /// SHOAL_TEST_TIME_SCALE (a number ≥ 1), or 1.
    public static let scale: Double = {
        guard let text = ProcessInfo.processInfo.environment["SHOAL_TEST_TIME_SCALE"],
              let value = Double(text), value >= 1 else { return 1 }
        return value
    }()

    /// `seconds` stretched by the scale.
    public static func seconds(_ seconds: Double) -> Double { seconds * scale }

    /// `nanoseconds` stretched by the scale.
    public static func nanoseconds(_ nanoseconds: UInt64) -> UInt64 { UInt64(Double(nanoseconds) * scale) }
}
