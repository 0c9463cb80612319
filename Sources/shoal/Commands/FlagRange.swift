// The one range check of `shoal serve`'s numeric flags: a value outside its documented range
// (docs/operations.md), NaN and infinities included, is a ValidationError naming the flag, which
// ArgumentParser turns into the usage message and exit status 64 (EX_USAGE).
import ArgumentParser

enum FlagRange {
    /// Throws unless `value` lies in `range` (NaN lies in none).
    static func require<Value: Comparable>(_ flag: String, _ value: Value, in range: ClosedRange<Value>, unit: String? = nil) throws {
        guard range.contains(value) else {
            let bounds = "\(range.lowerBound)...\(range.upperBound)" + (unit.map { " " + $0 } ?? "")
            throw ValidationError("--\(flag) must be in \(bounds), not \(value)")
        }
    }
}
