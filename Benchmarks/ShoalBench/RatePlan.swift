// The open model's schedule (--rate, --stages): how many messages should have gone out t seconds
// after the start, and when message m is due. A stage ramps linearly from the rate before it (0 at
// the start) to its own, as k6's stages do; --rate R is one flat stage. Pure: no clock, no I/O.
import Foundation

struct RatePlan: Equatable {
    /// `seconds` long, the rate going linearly from `from` to `to` messages per second.
    struct Segment: Equatable {
        var seconds: Double
        var from: Double
        var to: Double

        /// Messages due in the first `t` seconds of the segment (0 ≤ t ≤ seconds).
        func messages(in t: Double) -> Double { from * t + (to - from) * t * t / (2 * seconds) }
    }

    private(set) var segments: [Segment]

    /// Below this share of the target a run is reported as not having achieved it.
    static let achievedEnough = 0.99

    /// `rate` messages per second for `seconds`.
    init(rate: Double, seconds: Double) { segments = [Segment(seconds: seconds, from: rate, to: rate)] }

    init(segments: [Segment]) { self.segments = segments }

    struct ParseError: Error, CustomStringConvertible { var description: String }

    /// `10s:1000,30s:5000,10s:0`: each stage is DURATION:RATE, the duration in s, ms or m (a bare
    /// number is seconds), the rate in messages per second reached at the stage's end.
    init(stages text: String) throws(ParseError) {
        var segments: [Segment] = []
        var rate = 0.0
        for (i, stage) in text.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let parts = stage.split(separator: ":", omittingEmptySubsequences: false)
            let which = "stage \(i + 1) (\"\(stage)\")"
            guard parts.count == 2 else { throw ParseError(description: "\(which): expected DURATION:RATE, such as 10s:1000") }
            guard let seconds = Self.seconds(parts[0].trimmingCharacters(in: .whitespaces)), seconds > 0 else {
                throw ParseError(description: "\(which): duration must be a positive number with s, ms or m, such as 10s")
            }
            guard let to = Double(parts[1].trimmingCharacters(in: .whitespaces)), to.isFinite, to >= 0 else {
                throw ParseError(description: "\(which): rate must be a number of messages per second ≥ 0")
            }
            segments.append(Segment(seconds: seconds, from: rate, to: to))
            rate = to
        }
        guard segments.contains(where: { $0.from > 0 || $0.to > 0 }) else { throw ParseError(description: "every stage has rate 0: nothing to send") }
        self.segments = segments
    }

    /// "1.5s", "200ms", "2m", "3" → seconds.
    static func seconds(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            return Double(text.dropLast(suffix.count)).flatMap { $0.isFinite ? $0 * scale : nil }
        }
        return Double(text).flatMap { $0.isFinite ? $0 : nil }
    }

    var seconds: Double { segments.reduce(0) { $0 + $1.seconds } }

    /// Messages due in the first `t` seconds.
    func messages(at t: Double) -> Double {
        var total = 0.0
        var left = t
        for segment in segments {
            guard left > 0 else { break }
            total += segment.messages(in: min(left, segment.seconds))
            left -= segment.seconds
        }
        return total
    }

    /// Seconds from the start at which message `m` (0-based) is due: where `messages(at:)` reaches
    /// m. Nil once the plan is over.
    func time(ofMessage m: Double) -> Double? {
        var before = 0.0
        var start = 0.0
        for segment in segments {
            let inSegment = segment.messages(in: segment.seconds)
            if m < before + inSegment {
                // Solve from·τ + (to−from)/(2·seconds)·τ² = k in the form that stays exact for a
                // flat segment and a ramp either way.
                let k = m - before
                let a = (segment.to - segment.from) / (2 * segment.seconds)
                let b = segment.from
                let root = (b * b + 4 * a * k).squareRoot()
                return start + (b + root > 0 ? 2 * k / (b + root) : 0)
            }
            before += inSegment
            start += segment.seconds
        }
        return nil
    }

    /// The plan for a part of the load (a thread's share of the connections).
    func scaled(by part: Double) -> RatePlan {
        RatePlan(segments: segments.map { Segment(seconds: $0.seconds, from: $0.from * part, to: $0.to * part) })
    }

    /// "10s:1000,30s:5000" again, for the report's parameters.
    var stagesText: String {
        segments.map { "\(Self.trimmed($0.seconds))s:\(Self.trimmed($0.to))" }.joined(separator: ",")
    }

    private static func trimmed(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
