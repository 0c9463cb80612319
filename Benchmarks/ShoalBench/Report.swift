// What a scenario measured: one record per run, the spread over runs (median, min..max), latency
// percentiles, errors and warnings; printed as a human table or as JSON (--json).
import Foundation
import Histogram

/// Latency percentiles in microseconds.
struct LatencySummary: Codable {
    var count: UInt64
    var p50: Double
    var p99: Double
    var p999: Double
    var max: Double
    var mean: Double

    init?(_ histogram: Histogram<UInt64>) {
        guard histogram.totalCount > 0 else { return nil }
        count = histogram.totalCount
        p50 = Double(histogram.valueAtPercentile(50)) / 1000
        p99 = Double(histogram.valueAtPercentile(99)) / 1000
        p999 = Double(histogram.valueAtPercentile(99.9)) / 1000
        max = Double(histogram.max) / 1000
        mean = histogram.mean / 1000
    }
}

/// A latency histogram in nanoseconds, from 1 ns to 60 s, 3 significant digits.
func makeLatencyHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
}

/// The figures of one measured window.
struct RunFigures: Codable {
    var run: Int
    var seconds: Double
    /// Messages (echo), deliveries (broadcast), handshakes (connect), connections held (idle).
    var count: Double
    /// count per wall-clock second (nil for idle).
    var perSecond: Double?
    /// user+sys of the server's process tree over the window (nil without --server-pid).
    var serverCPUSeconds: Double?
    /// serverCPUSeconds / seconds.
    var serverCPUShare: Double?
    /// count per server CPU-second; nil without --server-pid and when the client was the bottleneck.
    var perServerCPUSecond: Double?
    var clientCPUSeconds: Double
    /// The bench's CPU over the window as a share of one core (above 1 with several threads).
    var clientCPUShare: Double
    /// A bench thread used ≥ 90 % of a core, or the whole bench ≥ 90 % of the CPUs it may use:
    /// the figure would measure the client, not the server.
    var clientBound: Bool
    var latency: LatencySummary?
    /// Scenario-specific figures (sent, own deliveries, RSS...).
    var extra: [String: Double] = [:]
    /// Each thread's part: counts add up to `count`.
    var perThread: [ThreadFigures] = []
    /// Open model (--rate, --stages): messages the rate asked for in the window, that per second,
    /// and the share of it that came back.
    var target: Double? = nil
    var targetPerSecond: Double? = nil
    var achievedShare: Double? = nil
    /// When the window began, in seconds from the start line (the timeline's zero).
    var startSeconds: Double = 0
}

/// One thread's part of a run.
struct ThreadFigures: Codable {
    /// 1-based.
    var thread: Int
    var count: Double
    /// The thread's own user+sys CPU over its window (CLOCK_THREAD_CPUTIME_ID).
    var cpuSeconds: Double
    var cpuShare: Double
    /// The thread's own window: its start (seconds from the start line) and length.
    var startSeconds: Double
    var seconds: Double
    /// Open model: the messages due to this thread in its window.
    var target: Double?
}

/// Median and range of a figure over runs.
struct Spread: Codable {
    var median: Double
    var min: Double
    var max: Double

    init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let n = sorted.count
        median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        min = sorted[0]
        max = sorted[n - 1]
    }
}

/// Everything one invocation of shoal-bench reports.
struct Report: Codable {
    var scenario: String
    var url: String
    /// The bench's loop backend ("io_uring", or "epoll" when forced or unavailable).
    var backend: String
    /// What `count` counts.
    var unit: String
    var parameters: [String: String]
    var serverPids: [Int32]
    /// Loops (threads) that generated the load.
    var threads: Int = 1
    var connectionsOpened: Int
    var runs: [RunFigures]
    /// Spread over runs of perSecond, perServerCPUSecond, clientCPUShare, serverCPUShare and each extra.
    var summary: [String: Spread]
    /// Latency over all runs together (open model: from each message's intended send time).
    var latency: LatencySummary?
    /// Open model only: latency from the actual send, which hides the time a message waited to go out.
    var latencyUncorrected: LatencySummary? = nil
    var errors: [String: Int]
    var errorSamples: [String]
    var warnings: [String]
    /// permessage-deflate: negotiated or not, and traffic (only with --deflate).
    var deflate: DeflateReport? = nil
    /// --threshold, each with its measured value (only with --threshold).
    var thresholds: [ThresholdResult]? = nil
    /// The latency at fixed percentiles over every run (an HdrHistogram percentile plot's points).
    var latencyPercentiles: [PercentilePoint]? = nil
    /// Per interval from the start line, warm-up included.
    var timeline: TimelineReport? = nil

    mutating func summarize() {
        func spread(_ values: [Double?]) -> Spread? { Spread(values.compactMap { $0 }) }
        summary["per_second"] = spread(runs.map(\.perSecond))
        summary["per_server_cpu_second"] = spread(runs.map(\.perServerCPUSecond))
        summary["server_cpu_share"] = spread(runs.map(\.serverCPUShare))
        summary["client_cpu_share"] = spread(runs.map(\.clientCPUShare))
        summary["count"] = spread(runs.map(\.count))
        summary["target_per_second"] = spread(runs.map(\.targetPerSecond))
        summary["achieved_share"] = spread(runs.map(\.achievedShare))
        for key in Set(runs.flatMap(\.extra.keys)) {
            summary[key] = spread(runs.map { $0.extra[key] })
        }
        for run in runs where run.clientBound {
            let busiest = run.perThread.max { $0.cpuShare < $1.cpuShare }
            let detail = threads > 1
                ? "the bench used \(percent(run.clientCPUShare)) of a core over \(threads) threads (busiest thread \(busiest.map { percent($0.cpuShare) } ?? "-"))"
                : "the client used \(percent(run.clientCPUShare)) of a core"
            warnings.append("run \(run.run): WARNING \(detail): "
                + "it, not the server, was the bottleneck; no per-server-CPU figure for this run "
                + "(more --threads, fewer connections per bench, or run the bench on faster/idle cores)")
        }
        for run in runs {
            guard let share = run.achievedShare, let target = run.targetPerSecond, share < RatePlan.achievedEnough else { continue }
            warnings.append("run \(run.run): target rate not achieved: \(grouped(target)) \(unit)/s asked, "
                + "\(grouped(run.perSecond ?? 0)) achieved (\(fixed(share * 100, 1)) %, \(fixed((1 - share) * 100, 1)) % short)")
        }
        if runs.count < 3 { warnings.append("only \(runs.count) run(s): use --runs 3 or more for a figure worth quoting") }
        if !errors.isEmpty { warnings.append("errors: " + errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) }
    }

    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// The human table. `extraColumns` are (key in `extra`, column title, formatter).
    func table(rateTitle: String, extraColumns: [(String, String, (Double) -> String)] = []) -> String {
        var out = "shoal-bench \(scenario)  \(url)  [client loop: \(backend)]\n"
        out += parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "  ") + "\n\n"
        var header = ["run", "seconds", unit]
        let rated = runs.contains { $0.perSecond != nil }
        if rated { header.append(rateTitle) }
        let open = runs.contains { $0.targetPerSecond != nil }
        if open { header += ["target/s", "achieved"] }
        let hasServer = runs.contains { $0.serverCPUSeconds != nil }
        if hasServer { header.append("server CPU") }
        if hasServer && rated { header.append("\(unit)/server-CPU-s") }
        header.append("bench CPU")
        let hasLatency = runs.contains { $0.latency != nil }
        if hasLatency { header += ["p50 µs", "p99 µs", "p99.9 µs", "max µs"] }
        header += extraColumns.map(\.1)
        var rows: [[String]] = [header]
        for r in runs {
            var row = ["\(r.run)", String(format: "%.2f", r.seconds), grouped(r.count)]
            if rated { row.append(r.perSecond.map(grouped) ?? "-") }
            if open { row += [r.targetPerSecond.map(grouped) ?? "-", r.achievedShare.map { fixed($0 * 100, 1) + "%" } ?? "-"] }
            if hasServer { row.append(r.serverCPUShare.map(percent) ?? "-") }
            if hasServer && rated { row.append(r.clientBound ? "WARNING: client-bound" : (r.perServerCPUSecond.map(grouped) ?? "-")) }
            row.append(percent(r.clientCPUShare))
            if hasLatency {
                if let l = r.latency { row += [l.p50, l.p99, l.p999, l.max].map { String(format: "%.1f", $0) } } else { row += ["-", "-", "-", "-"] }
            }
            row += extraColumns.map { column in r.extra[column.0].map(column.2) ?? "-" }
            rows.append(row)
        }
        func spreadCell(_ key: String, _ format: (Double) -> String) -> String {
            guard let s = summary[key] else { return "-" }
            return runs.count > 1 ? "\(format(s.median)) (\(format(s.min))..\(format(s.max)))" : format(s.median)
        }
        var medianRow = ["median", "", spreadCell("count", grouped)]
        if rated { medianRow.append(spreadCell("per_second", grouped)) }
        if open { medianRow += [spreadCell("target_per_second", grouped), spreadCell("achieved_share") { fixed($0 * 100, 1) + "%" }] }
        if hasServer { medianRow.append(spreadCell("server_cpu_share", percent)) }
        if hasServer && rated {
            medianRow.append(summary["per_server_cpu_second"] == nil ? "WARNING: client-bound" : spreadCell("per_server_cpu_second", grouped))
        }
        medianRow.append(spreadCell("client_cpu_share", percent))
        if hasLatency, let l = latency { medianRow += [l.p50, l.p99, l.p999, l.max].map { String(format: "%.1f", $0) } } else if hasLatency { medianRow += ["-", "-", "-", "-"] }
        medianRow += extraColumns.map { spreadCell($0.0, $0.2) }
        rows.append(medianRow)
        var widths = [Int](repeating: 0, count: header.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = Swift.max(widths[i], cell.count) } }
        for (n, row) in rows.enumerated() {
            out += row.enumerated().map { i, cell in
                i == 0 ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[i] - cell.count) + cell
            }.joined(separator: "  ") + "\n"
            if n == 0 || n == rows.count - 2 { out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        if hasLatency { out += "(median row: latency over all runs together; other cells: median (min..max) over \(runs.count) run(s))\n" }
        if let u = latencyUncorrected {
            out += "latency above is from each message's intended send time; from the actual send (uncorrected): "
                + "p50 \(fixed(u.p50, 1))  p99 \(fixed(u.p99, 1))  p99.9 \(fixed(u.p999, 1))  max \(fixed(u.max, 1)) µs\n"
        }
        if threads > 1 {
            out += "bench CPU per thread: " + runs.map { r in
                "run \(r.run) " + r.perThread.sorted { $0.thread < $1.thread }.map { percent($0.cpuShare) }.joined(separator: " + ")
            }.joined(separator: ", ") + "\n"
        }
        if let d = deflate {
            let opened = d.negotiatedConnections + d.declinedConnections
            out += "permessage-deflate: negotiated on \(grouped(Double(d.negotiatedConnections))) of \(grouped(Double(opened))) connection(s)"
            out += d.answers.isEmpty ? " (the server declined)\n" : "; server answered: "
                + d.answers.sorted { $0.key < $1.key }.map { "\"\($0.key)\" ×\(grouped(Double($0.value)))" }.joined(separator: ", ") + "\n"
            if d.messagesReceived > 0 {
                let ratio = d.messageBytesReceived > 0 ? Double(d.wireBytesReceived) / Double(d.messageBytesReceived) : 0
                out += "  received \(grouped(Double(d.messagesReceived))) message(s), \(bytesText(Double(d.messageBytesReceived))) of payload "
                    + "in \(bytesText(Double(d.wireBytesReceived))) of frames (wire/payload \(fixed(ratio, 3)))\n"
            }
            out += "  compressed messages sent: \(grouped(Double(d.compressedMessagesSent))); "
                + "bench zlib memory (peak at a run's end): \(bytesText(Double(d.benchZlibBytesPeak)))\n"
        }
        for t in thresholds ?? [] {
            let measured = t.measured.map { fixed($0, 3).replacingOccurrences(of: #"\.?0+$"#, with: "", options: .regularExpression) + t.unit } ?? "nothing measured"
            out += "threshold \(t.threshold): \(measured): \(t.passed ? "passed" : "FAILED")\n"
        }
        out += errors.isEmpty ? "errors: none\n" : "errors: " + errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "\n"
        for sample in errorSamples { out += "  e.g. \(sample)\n" }
        for warning in warnings where !warning.hasPrefix("errors:") { out += "\(warning)\n" }
        return out
    }
}

/// 1234567.8 → "1,234,568".
func grouped(_ value: Double) -> String {
    guard value.isFinite else { return "\(value)" }
    let digits = String(Int(value.rounded()))
    let negative = digits.hasPrefix("-")
    var body = Array(negative ? digits.dropFirst() : digits[...])
    var i = body.count - 3
    while i > 0 {
        body.insert(",", at: i)
        i -= 3
    }
    return (negative ? "-" : "") + String(body)
}

func percent(_ share: Double) -> String { String(format: "%.0f%%", share * 100) }

func bytesText(_ value: Double) -> String {
    switch abs(value) {
    case ..<10_000: return String(format: "%.0f B", value)
    case ..<10_000_000: return String(format: "%.1f KiB", value / 1024)
    default: return String(format: "%.1f MiB", value / 1048576)
    }
}

/// `value` with `digits` decimals.
func fixed(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }
