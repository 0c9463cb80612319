// The histogram buckets' bit arithmetic against the definition (the first bound >= the value),
// at every bound and its neighbours, and the bounds the two Shoal histograms expose.
import ShoalCluster
import Testing

@Suite("Log buckets")
struct LogBucketsTests {
    /// The definition, by search: what `index(of:)` computes from bit lengths.
    private func reference(_ buckets: LogBuckets, _ value: UInt64) -> Int {
        buckets.upperBounds.firstIndex { value <= $0 } ?? buckets.finiteCount
    }

    @Test("every bound, its neighbours, zero and the largest value land where the definition says")
    func matchesTheDefinition() {
        for buckets in [LogBuckets.handshakeMicroseconds, .messageBytes, LogBuckets(baseExponent: 0, finiteCount: 3)] {
            var values: [UInt64] = [0, 1, 2, 3, UInt64.max, UInt64.max - 1]
            for bound in buckets.upperBounds { values += [bound - 1, bound, bound + 1, bound * 2, bound * 3] }
            for value in values {
                #expect(buckets.index(of: value) == reference(buckets, value), "value \(value)")
            }
        }
    }

    @Test("the exposed bounds: handshakes 64 µs to 16.8 s, messages 16 B to 64 MiB, each ×4")
    func exposedBounds() {
        #expect(LogBuckets.handshakeMicroseconds.upperBounds
            == [64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216])
        #expect(LogBuckets.messageBytes.upperBounds.first == 16 && LogBuckets.messageBytes.upperBounds.last == 64 << 20)
        #expect(LogBuckets.messageBytes.count == 13 && LogBuckets.handshakeMicroseconds.count == 11)
    }
}
