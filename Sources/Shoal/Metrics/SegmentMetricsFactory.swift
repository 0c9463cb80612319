// swift-metrics for handlers: the factory each worker bootstraps (Shoal.run), storing every
// Counter, Meter/Gauge, Recorder and Timer a handler makes in the worker's bounded table of the
// shared segment, where /metrics in any worker finds it. Names and labels are made valid for
// Prometheus here; a series the table cannot take (full, too long, reserved name, or a name
// already used by another kind) gets a handler that records nothing, and is counted.
import CoreMetrics
import ShoalCluster
import ShoalPosix

/// The `MetricsFactory` of a worker.
final class SegmentMetricsFactory: MetricsFactory, @unchecked Sendable {
    private let table: HandlerSeriesTable
    private let metrics: WorkerMetrics
    /// Handlers make metrics from any thread; only inserting needs the lock.
    private let lock = Lock()

    init(table: HandlerSeriesTable, metrics: WorkerMetrics) {
        self.table = table
        self.metrics = metrics
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        var name = SeriesName.sanitized(label)
        if !name.hasSuffix("_total") { name += "_total" }
        guard let entry = entry(.counter, name, dimensions) else { return Refused() }
        return CounterEntry(table: table, entry: entry)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        guard let entry = entry(.gauge, SeriesName.sanitized(label), dimensions) else { return Refused() }
        return GaugeEntry(table: table, entry: entry)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard let entry = entry(aggregate ? .summary : .gauge, SeriesName.sanitized(label), dimensions) else { return Refused() }
        return aggregate ? SummaryEntry(table: table, entry: entry) : GaugeEntry(table: table, entry: entry)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        guard let entry = entry(.summary, SeriesName.sanitized(label), dimensions) else { return Refused() }
        return SummaryEntry(table: table, entry: entry)
    }

    // Entries live as long as the segment: destroying a handler leaves its series in place.
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    private func entry(_ kind: HandlerSeriesKind, _ name: String, _ dimensions: [(String, String)]) -> HandlerSeriesTable.Entry? {
        let entry = SeriesName.isReserved(name, dimensions) ? nil : lock.withLock {
            table.entry(kind: kind, name: name, labels: SeriesName.labels(dimensions))
        }
        if entry == nil { metrics.countRefusedHandlerSeries() }
        return entry
    }
}

/// Names and labels as Prometheus accepts them.
enum SeriesName {
    /// `label` with every character outside [a-zA-Z0-9_:] made "_", and a leading digit prefixed.
    static func sanitized(_ label: String, colons: Bool = true) -> String {
        var out = String(label.unicodeScalars.map { scalar -> Character in
            let ok = scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_"
                                        || (colons && scalar == ":"))
            return ok ? Character(scalar) : "_"
        })
        if out.isEmpty || out.first!.isNumber { out = "_" + out }
        return out
    }

    /// `a="x",b="y"`, label names sanitized, values escaped.
    static func labels(_ dimensions: [(String, String)]) -> String {
        dimensions.map { "\(sanitized($0.0, colons: false))=\"\(MetricsExposition.escaped($0.1))\"" }.joined(separator: ",")
    }

    /// Names Shoal's own families use, and labels the exposition adds itself.
    static func isReserved(_ name: String, _ dimensions: [(String, String)]) -> Bool {
        name.hasPrefix("shoal_") || name.hasPrefix("process_")
            || dimensions.contains { ["worker", "le", "quantile"].contains(sanitized($0.0, colons: false)) || $0.0.hasPrefix("__") }
    }
}

/// A series' place in the table, which each kind of handler records into.
private class SeriesHandle: @unchecked Sendable {
    let table: HandlerSeriesTable
    let entry: HandlerSeriesTable.Entry
    init(table: HandlerSeriesTable, entry: HandlerSeriesTable.Entry) { (self.table, self.entry) = (table, entry) }
}

private final class CounterEntry: SeriesHandle, CounterHandler, @unchecked Sendable {
    func increment(by amount: Int64) { if amount > 0 { table.increment(entry, by: UInt64(amount)) } }
    func reset() {}
}

private final class GaugeEntry: SeriesHandle, MeterHandler, RecorderHandler, @unchecked Sendable {
    func set(_ value: Int64) { table.set(entry, Double(value)) }
    func set(_ value: Double) { table.set(entry, value) }
    func increment(by amount: Double) { table.add(entry, amount) }
    func decrement(by amount: Double) { table.add(entry, -amount) }
    func record(_ value: Int64) { set(value) }
    func record(_ value: Double) { set(value) }
}

/// An aggregating recorder, or a timer (its nanoseconds recorded as seconds).
private final class SummaryEntry: SeriesHandle, RecorderHandler, TimerHandler, @unchecked Sendable {
    func record(_ value: Int64) { table.observe(entry, Double(value)) }
    func record(_ value: Double) { table.observe(entry, value) }
    func recordNanoseconds(_ duration: Int64) { table.observe(entry, Double(duration) / 1e9) }
}

/// What a refused series gets: it records nothing.
private final class Refused: CounterHandler, MeterHandler, RecorderHandler, TimerHandler, @unchecked Sendable {
    func increment(by: Int64) {}
    func reset() {}
    func set(_ value: Int64) {}
    func set(_ value: Double) {}
    func increment(by: Double) {}
    func decrement(by: Double) {}
    func record(_ value: Int64) {}
    func record(_ value: Double) {}
    func recordNanoseconds(_ duration: Int64) {}
}
