// When a worker trims its heap: once after a storm has left (and on the way down a long one), never
// while clients only come, never for a handful of closes.
@testable import Shoal
import Testing

@Suite("Heap trim policy")
struct HeapTrimPolicyTests {
    private func trims(_ samples: [Int]) -> [Int] {
        var policy = HeapTrimPolicy()
        return samples.indices.filter { policy.sample(openSockets: samples[$0]) }
    }

    @Test func aStormThatLeavesIsTrimmedOnTheWayDownAndOnceItSettles() {
        // Index:     0    1     2     3    4   5   6  7
        #expect(trims([0, 3000, 3000, 1400, 900, 20, 3, 3]) == [3, 5])
    }

    @Test func arrivalsAndSmallLeavesNeverTrim() {
        #expect(trims([0, 100, 500, 900, 900, 860, 860, 840, 900]) == [])
    }

    @Test func aPartialLeaveTrimsOnceTheCountIsSteady() {
        #expect(trims([1000, 1000, 700, 700, 700]) == [3])
    }

    @Test func aSecondStormAfterATrimIsTrimmedAgain() {
        // 4 is the follow-up of the trim at 1
        #expect(trims([800, 0, 0, 600, 600, 0, 0]) == [1, 4, 5])
    }

    @Test func aTrimIsFollowedByOneMoreThreeSamplesLater() {
        // what the storm's last bus messages held is back in the pool by then
        #expect(trims([0, 3000, 23, 23, 23, 23, 23, 23, 23]) == [2, 5])
    }

    private func settles(_ progress: [UInt64]) -> [Int] {
        var policy = HeapTrimPolicy()
        return progress.indices.filter { policy.sample(progress: progress[$0]) }
    }

    @Test func aBurstThatSettlesTrimsOnceAtTheFirstQuietSample() {
        // A connect storm of 10,000 clients that then stay idle: no socket closes, yet it is over.
        // Index:       0  1       2       3       4       5
        #expect(settles([0, 30_000, 40_000, 40_010, 40_020, 40_030]) == [3])
    }

    @Test func aBurstBeforeTheFirstSampleCounts() {
        // A fresh worker whose first connect storm is over within its first second.
        #expect(settles([30_000, 30_010, 30_020]) == [1])
    }

    @Test func steadyLoadAndQuietLoopsNeverTrim() {
        #expect(settles([50_000, 100_000, 150_000, 200_000]) == [])  // echo under load
        #expect(settles([0, 10, 20, 300, 400, 500]) == [])  // idle connections, a few pings
    }

    @Test func aSlowStormSpreadOverManySecondsIsABurstToo() {
        // 1,000 steps a second for 10 s (a million clients opening over 51 workers), then quiet
        let slow = (0...10).map { UInt64($0 * 1_000) } + [10_010, 10_020, 10_030]
        #expect(settles(slow) == [11])
        // a few hundred steps a second (pings) are not one within these 14 s (after 20 s: one cheap release)
        #expect(settles((0...14).map { UInt64($0 * 200) }) == [])
    }

    @Test func aBurstThatFadesSlowlyTrimsOnlyOnceItIsQuiet() {
        #expect(settles([0, 20_000, 21_000, 21_500, 21_900, 21_910, 21_920]) == [5])
    }
}
