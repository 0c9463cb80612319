// A repeating accept failure reaches the log once, then once per 10 s with the count left out.
@testable import Shoal
import Testing

@Suite struct RepeatedFailureReportTests {
    @Test func theFirstIsReportedThenOnePerIntervalWithTheCountLeftOut() {
        var report = RepeatedFailureReport()
        let second: UInt64 = 1_000_000_000
        #expect(report.failed(now: 5 * second) == 0)
        // ten retries a second for 9.9 s: quiet
        var quiet = 0
        for tenth in 1..<100 where report.failed(now: 5 * second + UInt64(tenth) * second / 10) == nil { quiet += 1 }
        #expect(quiet == 99)
        #expect(report.failed(now: 15 * second) == 99)
        #expect(report.failed(now: 15 * second + 1) == nil)
        #expect(report.failed(now: 26 * second) == 1)
    }
}
