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
}
