// --threshold parsing and checking, without a run: a report built by hand.
import Testing

@testable import shoal_bench

@Suite struct ThresholdTests {
    @Test func latencyLimitsAreMicroseconds() throws {
        let t = try Threshold("p99 < 5ms")
        #expect(t.metric == .percentile(99) && t.comparison == .less && t.limit == 5000 && t.unit == "ms")
        #expect(try Threshold("p99.9<=20us").metric == .percentile(99.9))
        #expect(try Threshold("p999<1s").metric == .percentile(99.9))
        #expect(try Threshold("max>=1ns").limit == 0.001)
    }

    @Test func errorsAndRate() throws {
        #expect(try Threshold("errors<0.1%").metric == .errors(share: true))
        #expect(abs(try Threshold("errors<0.1%").limit - 0.001) < 1e-12)
        #expect(try Threshold("errors<=10").metric == .errors(share: false))
        #expect(try Threshold("rate>=0.99").limit == 0.99)
        #expect(try Threshold("rate>=99%").limit == 0.99)
    }

    @Test(arguments: ["p99<5", "p99=5ms", "latency<5ms", "p101<5ms", "p0<1ms", "errors<abc", "rate>=0.99x", "<5ms", "p99<ms"])
    func malformedIsRefused(_ text: String) {
        #expect(throws: Threshold.ParseError.self) { try Threshold(text) }
    }

    @Test func checkedAgainstAReport() throws {
        var report = Report(scenario: "echo", url: "ws://x/", backend: "io_uring", unit: "messages", parameters: [:], serverPids: [],
                            connectionsOpened: 1, runs: [], summary: [:], latency: nil, errors: ["dropped": 1], errorSamples: [], warnings: [])
        var run = RunFigures(run: 1, seconds: 1, count: 999, perSecond: 999, serverCPUSeconds: nil, serverCPUShare: nil,
                             perServerCPUSecond: nil, clientCPUSeconds: 0, clientCPUShare: 0, clientBound: false, latency: nil)
        run.target = 1000
        report.runs = [run]
        let results = report.check([try Threshold("errors<0.1%"), try Threshold("errors<=1"), try Threshold("rate>=0.99"),
                                    try Threshold("p99<2ms")]) { p in p == 99 ? 2500 : nil }
        #expect(results.map(\.passed) == [false, true, true, false])
        #expect(results[0].measured == 0.1 && results[0].unit == "%")  // 1 error in 1,000
        #expect(abs(results[2].measured! - 0.999) < 1e-12)
        #expect(results[3].measured == 2.5)
    }
}
