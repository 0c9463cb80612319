// Prometheus text exposition (format 0.0.4), written out: families with HELP and TYPE once,
// label values escaped, fixed-point decimals for scaled integers (microseconds shown as seconds
// without floating-point noise), and histograms in their cumulative `le` form. Pure: no I/O.
import ShoalCluster

/// A /metrics body under construction.
struct MetricsExposition {
    private(set) var text = ""

    /// Starts a family: its HELP and TYPE lines.
    mutating func family(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    /// One sample line; `value` is already formatted.
    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: String) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escaped($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " \(value)\n"
    }

    /// One sample line whose labels are rendered already (`a="x",b="y"`, or empty).
    mutating func line(_ name: String, _ renderedLabels: String, _ value: String) {
        text += renderedLabels.isEmpty ? "\(name) \(value)\n" : "\(name){\(renderedLabels)} \(value)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: some BinaryInteger) {
        sample(name, labels, "\(value)")
    }

    /// A histogram family's samples from non-cumulative bucket counts (+Inf last). Bounds and the
    /// sum are in a unit `scale` times smaller than the exposed one (scale 1_000_000: µs as s).
    mutating func histogram(_ name: String, _ labels: [(String, String)] = [], bounds: [UInt64], scale: UInt64,
                            _ counts: HistogramCounts) {
        var cumulative: UInt64 = 0
        for (index, count) in counts.buckets.enumerated() {
            cumulative &+= count
            let le = index < bounds.count ? Self.decimal(bounds[index], scale: scale) : "+Inf"
            sample(name + "_bucket", labels + [("le", le)], cumulative)
        }
        sample(name + "_sum", labels, Self.decimal(counts.sum, scale: scale))
        sample(name + "_count", labels, cumulative)
    }

    /// A Double as the format writes it: integers without a fraction, NaN and ±Inf by their names.
    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 9.0e15 { return "\(Int64(value))" }
        return "\(value)"
    }

    /// `value / scale` as an exact decimal ("0.000064", "12", "1.5"); `scale` a power of ten.
    static func decimal(_ value: UInt64, scale: UInt64) -> String {
        guard scale > 1 else { return "\(value)" }
        let whole = value / scale, fraction = value % scale
        guard fraction != 0 else { return "\(whole)" }
        var digits = String(fraction)
        let width = String(scale).count - 1
        digits = String(repeating: "0", count: width - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }

    /// A label value as the format wants it: backslash, double quote and newline escaped.
    static func escaped(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return value }
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}

/// What `shoal_build_info` says about the running binary.
public struct BuildLabels: Sendable, Equatable {
    public var version: String
    public var commit: String
    public var swift: String

    public init(version: String = "unknown", commit: String = "unknown", swift: String = "unknown") {
        self.version = version
        self.commit = commit
        self.swift = swift
    }
}
