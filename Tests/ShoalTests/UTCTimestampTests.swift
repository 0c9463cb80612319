import ShoalPosix
import Testing

/// The JSON log's time field, which log stores parse: RFC 3339 UTC with exactly three fraction digits.
@Suite struct UTCTimestampTests {
    @Test func formatsKnownInstants() {
        #expect(UTCTimestamp.format(seconds: 0, milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(UTCTimestamp.format(seconds: 1_796_567_173, milliseconds: 7) == "2026-12-06T14:26:13.007Z")
        // The day after February 29th of a leap year, and the last millisecond of a year.
        #expect(UTCTimestamp.format(seconds: 1_709_251_200, milliseconds: 999) == "2024-03-01T00:00:00.999Z")
        #expect(UTCTimestamp.format(seconds: 1_735_689_599, milliseconds: 999) == "2024-12-31T23:59:59.999Z")
    }

    @Test func nowIsWellFormed() {
        let now = UTCTimestamp.now()
        #expect(now.count == 24 && now.hasSuffix("Z"))
        #expect(now.hasPrefix("20"))
    }
}
