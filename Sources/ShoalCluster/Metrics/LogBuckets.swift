// Fixed histogram buckets whose upper bounds grow by 4: base, 4·base, 16·base, … A value finds its
// bucket from its bit length (no search, no floating point), so recording one is a shift and an
// add on the hot path. Buckets are not cumulative here; the exposition sums them into Prometheus'
// cumulative `le` form.

/// Upper bounds `2^baseExponent × 4^i` for i in 0..<finiteCount, then +Inf.
public struct LogBuckets: Sendable, Equatable {
    /// log2 of the first upper bound.
    public let baseExponent: Int
    /// Buckets with a finite upper bound; one more (+Inf) follows them.
    public let finiteCount: Int

    public init(baseExponent: Int, finiteCount: Int) {
        precondition(baseExponent >= 0 && finiteCount >= 1 && baseExponent + 2 * (finiteCount - 1) < 63)
        self.baseExponent = baseExponent
        self.finiteCount = finiteCount
    }

    /// Buckets in all, +Inf included.
    public var count: Int { finiteCount + 1 }

    /// The finite upper bounds, in the recorded unit.
    public var upperBounds: [UInt64] { (0..<finiteCount).map { 1 << UInt64(baseExponent + 2 * $0) } }

    /// The bucket of `value`: the first whose upper bound is at least `value` (Prometheus' `le`),
    /// or the +Inf bucket (`finiteCount`).
    @inline(__always)
    public func index(of value: UInt64) -> Int {
        guard value > 1 << UInt64(baseExponent) else { return 0 }
        // Bits needed for value - 1 is ceil(log2(value)); each bucket spans two more bits.
        let bits = 64 - (value - 1).leadingZeroBitCount
        return min((bits - baseExponent + 1) / 2, finiteCount)
    }

    /// Handshake latency in microseconds: 64 µs to about 16.8 s.
    public static let handshakeMicroseconds = LogBuckets(baseExponent: 6, finiteCount: 10)
    /// Received message size in bytes: 16 B to 64 MiB.
    public static let messageBytes = LogBuckets(baseExponent: 4, finiteCount: 12)
}
