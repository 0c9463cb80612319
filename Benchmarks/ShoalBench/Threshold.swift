// --threshold for CI: `p99<5ms`, `errors<0.1%`, `rate>=0.99`, checked against the final report.
// The exit status is 0 only when every threshold holds (99 otherwise, as k6 does), and the report
// lists each with its measured value. Parsing and checking are pure.
import Foundation

/// One pass/fail condition on a figure of the report.
struct Threshold: Equatable {
    enum Metric: Equatable {
        /// A latency percentile over all runs (50, 90, 99, 99.9, ...).
        case percentile(Double)
        case mean, max
        /// Errors of every kind, as a share of messages (with %) or as a count.
        case errors(share: Bool)
        /// Open model: messages that came back ÷ messages due, over all runs.
        case rate
    }

    enum Comparison: String, CaseIterable {
        // Two-character operators first: they are looked for in this order.
        case lessOrEqual = "<=", greaterOrEqual = ">=", less = "<", greater = ">"

        func holds(_ measured: Double, _ limit: Double) -> Bool {
            switch self {
            case .less: return measured < limit
            case .lessOrEqual: return measured <= limit
            case .greater: return measured > limit
            case .greaterOrEqual: return measured >= limit
            }
        }
    }

    /// What the report measures, to refuse a threshold on a figure the scenario does not have.
    enum Kind { case latency, errors, rate }

    let text: String
    let metric: Metric
    let comparison: Comparison
    /// In the metric's unit: µs for latency, a share 0...1 for rate and errors%, a count for errors.
    let limit: Double
    /// How the measured value is printed: the unit the threshold was written in.
    let unit: String
    let scale: Double

    /// The exit status when a threshold does not hold.
    static let failedStatus: Int32 = 99

    struct ParseError: Error, CustomStringConvertible { var description: String }

    init(_ text: String) throws(ParseError) {
        self.text = text
        let spaced = text.filter { !$0.isWhitespace }
        guard let comparison = Comparison.allCases.first(where: { spaced.contains($0.rawValue) }),
              let range = spaced.range(of: comparison.rawValue) else {
            throw ParseError(description: "--threshold '\(text)': expected METRIC<VALUE (or <=, >, >=), such as p99<5ms, errors<0.1%, rate>=0.99")
        }
        self.comparison = comparison
        let name = spaced[..<range.lowerBound].lowercased()
        let value = String(spaced[range.upperBound...])
        func fail(_ why: String) -> ParseError { ParseError(description: "--threshold '\(text)': \(why)") }
        let (number, suffix) = Self.split(value)
        guard let number, number.isFinite, number >= 0 else { throw fail("'\(value)' is not a non-negative number with an optional unit") }
        switch name {
        case "rate":
            metric = .rate
            switch suffix {
            case "": (limit, unit, scale) = (number, "", 1)
            case "%": (limit, unit, scale) = (number / 100, "%", 100)
            default: throw fail("rate is the achieved share of the target rate: a number such as 0.99, or 99%")
            }
        case "errors":
            switch suffix {
            case "": (metric, limit, unit, scale) = (.errors(share: false), number, "", 1)
            case "%": (metric, limit, unit, scale) = (.errors(share: true), number / 100, "%", 100)
            default: throw fail("errors is a count (errors<10) or a share of the messages (errors<0.1%)")
            }
        default:
            if name == "mean" {
                metric = .mean
            } else if name == "max" {
                metric = .max
            } else if name == "p999" {
                // As in the JSON's keys.
                metric = .percentile(99.9)
            } else if name.hasPrefix("p"), let p = Double(name.dropFirst()), p > 0, p <= 100 {
                metric = .percentile(p)
            } else {
                throw fail("unknown metric '\(name)': use p50, p90, p99, p99.9 (any percentile), mean, max, errors or rate")
            }
            let units: [String: Double] = ["ns": 0.001, "us": 1, "µs": 1, "ms": 1000, "s": 1_000_000]
            guard let microseconds = units[suffix] else { throw fail("a latency needs a unit: ns, us, ms or s (such as 5ms)") }
            (limit, unit, scale) = (number * microseconds, suffix, 1 / microseconds)
        }
    }

    /// "5.5ms" → (5.5, "ms").
    private static func split(_ value: String) -> (Double?, String) {
        let digits = value.prefix { $0.isNumber || $0 == "." }
        return (Double(digits), String(value.dropFirst(digits.count)))
    }

    var kind: Kind {
        switch metric {
        case .percentile, .mean, .max: return .latency
        case .errors: return .errors
        case .rate: return .rate
        }
    }
}

/// A threshold checked against a report: what was measured, in the threshold's unit.
struct ThresholdResult: Codable {
    var threshold: String
    /// Nil when the run measured nothing to compare (no latency sample, no message due).
    var measured: Double?
    var unit: String
    var passed: Bool
}

extension Report {
    /// Checks every threshold against this (summarized) report.
    func check(_ thresholds: [Threshold], latencyHistogram: (Double) -> Double?) -> [ThresholdResult] {
        thresholds.map { t in
            var value: Double?
            switch t.metric {
            case .percentile(let p): value = latencyHistogram(p)
            case .mean: value = latency?.mean
            case .max: value = latency?.max
            case .errors(let share):
                let errorCount = Double(errors.values.reduce(0, +))
                let messages = runs.reduce(0) { $0 + $1.count }
                value = share ? (messages + errorCount > 0 ? errorCount / (messages + errorCount) : nil) : errorCount
            case .rate:
                let due = runs.compactMap(\.target).reduce(0, +)
                value = due > 0 ? runs.reduce(0) { $0 + $1.count } / due : nil
            }
            let passed = value.map { t.comparison.holds($0, t.limit) } ?? false
            return ThresholdResult(threshold: t.text, measured: value.map { $0 * t.scale }, unit: t.unit, passed: passed)
        }
    }
}
