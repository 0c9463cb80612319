// The /metrics text writer: exact decimals for scaled integers, escaped label values, and
// histograms turned cumulative with their sum and count.
@testable import Shoal
import ShoalCluster
import Testing

@Suite("Metrics exposition")
struct MetricsExpositionTests {
    @Test("scaled integers print as exact decimals, trailing zeros dropped")
    func decimals() {
        #expect(MetricsExposition.decimal(64, scale: 1_000_000) == "0.000064")
        #expect(MetricsExposition.decimal(16_777_216, scale: 1_000_000) == "16.777216")
        #expect(MetricsExposition.decimal(2_500_000, scale: 1_000_000) == "2.5")
        #expect(MetricsExposition.decimal(3000, scale: 1000) == "3")
        #expect(MetricsExposition.decimal(0, scale: 1000) == "0")
        #expect(MetricsExposition.decimal(42, scale: 1) == "42")
    }

    @Test("label values escape backslash, quote and newline")
    func escaping() {
        var out = MetricsExposition()
        out.sample("x", [("a", "plain"), ("b", "q\"u\\o\nte")], 1)
        #expect(out.text == "x{a=\"plain\",b=\"q\\\"u\\\\o\\nte\"} 1\n")
    }

    @Test("a histogram's buckets come out cumulative, +Inf last, with sum and count")
    func histogram() {
        var out = MetricsExposition()
        out.histogram("h", [("w", "1")], bounds: [64, 256], scale: 1_000_000,
                      HistogramCounts(buckets: [2, 0, 3], sum: 1_500_000))
        #expect(out.text == """
            h_bucket{w="1",le="0.000064"} 2
            h_bucket{w="1",le="0.000256"} 2
            h_bucket{w="1",le="+Inf"} 5
            h_sum{w="1"} 1.5
            h_count{w="1"} 5

            """)
    }
}
