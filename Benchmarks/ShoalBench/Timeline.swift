// What happened over time, from the threads' common start: per interval, the messages (deliveries,
// handshakes) completed, the errors, and a latency histogram (2 significant digits: each interval's
// percentiles for the plots; the run figures keep the 3-digit histograms). Warm-up included: the
// runs' windows are marked by their start. Intervals are added up over threads like runs are.
import Histogram

struct Timeline {
    /// Monotonic ns of interval 0: the start line (events before it count in interval 0).
    var start: UInt64
    let interval: UInt64
    private(set) var counts: [Int] = []
    private(set) var errors: [Int] = []
    private(set) var latencies: [Histogram<UInt64>?] = []

    /// About `points` intervals over `seconds`, none shorter than 100 ms.
    init(start: UInt64, seconds: Double, points: Int = 300) {
        self.start = start
        let tenths = max(1, (seconds / Double(points) * 10).rounded(.up))
        interval = UInt64(tenths * 100_000_000)
    }

    @inline(__always)
    private mutating func index(_ now: UInt64) -> Int {
        let i = now > start ? Int((now - start) / interval) : 0
        while counts.count <= i {
            counts.append(0)
            errors.append(0)
            latencies.append(nil)
        }
        return i
    }

    /// One completed message (delivery, handshake) at `now`, with its latency in ns when timed.
    @inline(__always)
    mutating func record(latency: UInt64?, at now: UInt64) {
        let i = index(now)
        counts[i] += 1
        guard let latency else { return }
        if latencies[i] == nil {
            latencies[i] = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .two)
        }
        _ = latencies[i]?.record(latency)
    }

    mutating func recordError(at now: UInt64) {
        errors[index(now)] += 1
    }

    /// Another thread's timeline (same interval) added in, interval by interval from its own start.
    mutating func add(_ other: Timeline) {
        let shift = Int((max(other.start, start) - start) / interval)
        for (j, count) in other.counts.enumerated() {
            let i = index(start + UInt64(j + shift) * interval)
            counts[i] += count
            errors[i] += other.errors[j]
            if let h = other.latencies[j] {
                if latencies[i] == nil { latencies[i] = h } else { latencies[i]?.add(h) }
            }
        }
    }

    var points: TimelineReport {
        let seconds = Double(interval) / 1e9
        return TimelineReport(intervalSeconds: seconds, points: counts.indices.map { i in
            let h = latencies[i]
            func us(_ p: Double) -> Double? { h.map { Double($0.valueAtPercentile(p)) / 1000 } }
            return TimelinePoint(t: Double(i) * seconds, count: counts[i], perSecond: Double(counts[i]) / seconds, errors: errors[i],
                                 p50: us(50), p90: us(90), p99: us(99), max: h.map { Double($0.max) / 1000 })
        })
    }
}

/// The timeline in the report (JSON `timeline`): latencies in µs, nil for an interval without a timed message.
struct TimelineReport: Codable {
    var intervalSeconds: Double
    var points: [TimelinePoint]
}

struct TimelinePoint: Codable {
    /// Seconds from the start line to the interval's start.
    var t: Double
    var count: Int
    var perSecond: Double
    var errors: Int
    var p50: Double?
    var p90: Double?
    var p99: Double?
    var max: Double?
}

/// The latency distribution for an HdrHistogram percentile plot: the value at each of these percentiles (µs).
struct PercentilePoint: Codable {
    var percentile: Double
    var value: Double

    static let levels: [Double] = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.75, 99.9, 99.95, 99.975,
                                   99.99, 99.995, 99.999, 100]

    static func distribution(_ histogram: Histogram<UInt64>) -> [PercentilePoint] {
        levels.map { PercentilePoint(percentile: $0, value: Double(histogram.valueAtPercentile($0)) / 1000) }
    }
}
