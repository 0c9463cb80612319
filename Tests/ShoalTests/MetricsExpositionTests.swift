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

@Suite("Handler metric names")
struct SeriesNameTests {
    @Test("names and label names become valid Prometheus names; values are escaped")
    func sanitizing() {
        #expect(SeriesName.sanitized("http.requests-count") == "http_requests_count")
        #expect(SeriesName.sanitized("9lives") == "_9lives")
        #expect(SeriesName.sanitized("a:b") == "a:b" && SeriesName.sanitized("a:b", colons: false) == "a_b")
        #expect(SeriesName.sanitized("é") == "_")
        #expect(SeriesName.labels([("path", "/a\"b"), ("x.y", "1")]) == "path=\"/a\\\"b\",x_y=\"1\"")
        #expect(SeriesName.labels([]) == "")
    }

    @Test("Shoal's own prefixes and the labels the exposition adds are reserved")
    func reserved() {
        #expect(SeriesName.isReserved("shoal_connections", []))
        #expect(SeriesName.isReserved("process_open_fds", []))
        #expect(SeriesName.isReserved("mine", [("worker", "1")]))
        #expect(SeriesName.isReserved("mine", [("le", "1")]))
        #expect(SeriesName.isReserved("mine", [("__name__", "x")]))
        #expect(!SeriesName.isReserved("mine_total", [("path", "/")]))
    }

    @Test("numbers: integers without a fraction, NaN and infinities by name")
    func numbers() {
        #expect(MetricsExposition.number(3) == "3")
        #expect(MetricsExposition.number(-2) == "-2")
        #expect(MetricsExposition.number(0.5) == "0.5")
        #expect(MetricsExposition.number(.nan) == "NaN")
        #expect(MetricsExposition.number(-.infinity) == "-Inf")
    }
}
