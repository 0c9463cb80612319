// The bus's producer gate: a backed-up channel holds producers instead of losing messages, releases them
// with hysteresis, never holds for a peer that is gone or takes nothing, and keeps a hard cap.
import ShoalCluster
import Testing

@Suite("Bus flow control")
struct BusFlowControlTests {
    private let limits = BusFlowControl.Limits(highWater: 1000, lowWater: 200, hardCap: 5000, stallTimeout: 2_000)

    @Test func aChannelOverTheHighWaterMarkHoldsProducersUntilItDrainsBelowTheLowOne() {
        var flow = BusFlowControl(limits: limits)
        #expect(flow.measured(slot: 1, queued: 999, peerRuns: true, now: 0) == nil)
        #expect(!flow.holdsProducers)
        #expect(flow.measured(slot: 1, queued: 1000, peerRuns: true, now: 1) == .hold)
        #expect(flow.holdsProducers && flow.watchedSlots == [1])
        // Between the marks nothing changes, either way.
        #expect(flow.measured(slot: 1, queued: 1500, peerRuns: true, now: 2) == nil)
        #expect(flow.measured(slot: 1, queued: 201, peerRuns: true, now: 3) == nil)
        #expect(flow.holdsProducers)
        #expect(flow.measured(slot: 1, queued: 200, peerRuns: true, now: 4) == .release)
        #expect(!flow.holdsProducers && flow.watchedSlots.isEmpty)
        // Climbing back between the marks does not hold again.
        #expect(flow.measured(slot: 1, queued: 900, peerRuns: true, now: 5) == nil)
    }

    @Test func producersRunOnlyOnceEveryBackedUpChannelDrained() {
        var flow = BusFlowControl(limits: limits)
        #expect(flow.measured(slot: 1, queued: 1200, peerRuns: true, now: 0) == .hold)
        #expect(flow.measured(slot: 3, queued: 1100, peerRuns: true, now: 0) == nil)
        #expect(Set(flow.watchedSlots) == [1, 3])
        #expect(flow.measured(slot: 1, queued: 0, peerRuns: true, now: 1) == nil)
        #expect(flow.holdsProducers)
        #expect(flow.measured(slot: 3, queued: 100, peerRuns: true, now: 2) == .release)
    }

    @Test func aPeerWithNoWorkerHoldsNobody() {
        var flow = BusFlowControl(limits: limits)
        #expect(flow.measured(slot: 2, queued: 4000, peerRuns: false, now: 0) == nil)
        #expect(flow.measured(slot: 2, queued: 4000, peerRuns: true, now: 1) == .hold)
        // The worker died: its successor discards what was queued for it, nothing to wait for.
        #expect(flow.measured(slot: 2, queued: 4000, peerRuns: false, now: 2) == .release)
        #expect(flow.watchedSlots.isEmpty)
    }

    @Test func aPeerThatTakesNothingForTheStallTimeStopsHoldingAndFallsBackToTheCap() {
        var flow = BusFlowControl(limits: limits)
        #expect(flow.measured(slot: 1, queued: 3000, peerRuns: true, now: 0) == .hold)
        // Taking something (the queue reaches a new low) restarts the clock.
        #expect(flow.measured(slot: 1, queued: 2900, peerRuns: true, now: 1_500) == nil)
        #expect(flow.measured(slot: 1, queued: 2950, peerRuns: true, now: 3_000) == nil)
        #expect(flow.holdsProducers)
        #expect(flow.measured(slot: 1, queued: 2950, peerRuns: true, now: 3_500) == .release)
        #expect(!flow.holdsProducers)
        // Stalled, it is still watched, holds nobody while it recovers part way, and is forgotten once drained.
        #expect(flow.watchedSlots == [1])
        #expect(flow.measured(slot: 1, queued: 1500, peerRuns: true, now: 4_000) == nil)
        #expect(!flow.holdsProducers)
        #expect(flow.measured(slot: 1, queued: 0, peerRuns: true, now: 4_100) == nil)
        #expect(flow.watchedSlots.isEmpty)
        // And it can hold again afterwards.
        #expect(flow.measured(slot: 1, queued: 1000, peerRuns: true, now: 5_000) == .hold)
    }

    @Test func aStalledChannelDoesNotReleaseWhatAnotherOneHolds() {
        var flow = BusFlowControl(limits: limits)
        #expect(flow.measured(slot: 1, queued: 3000, peerRuns: true, now: 0) == .hold)
        #expect(flow.measured(slot: 2, queued: 3000, peerRuns: true, now: 1_000) == nil)
        #expect(flow.measured(slot: 1, queued: 3000, peerRuns: true, now: 2_000) == nil)  // stalled; slot 2 still holds
        #expect(flow.holdsProducers)
        #expect(flow.measured(slot: 2, queued: 100, peerRuns: true, now: 2_100) == .release)
    }

    @Test func theHardCapAdmitsUpToItsSizeAndNoMore() {
        let flow = BusFlowControl(limits: limits)
        #expect(flow.admits(size: 1000, queued: 4000))
        #expect(!flow.admits(size: 1001, queued: 4000))
        #expect(!flow.admits(size: 5001, queued: 0))
    }

    @Test func theStandardMarksKeepTheCapAsALastResort() {
        let standard = BusFlowControl.Limits.standard(stallTimeout: 10_000_000_000)
        #expect(standard.lowWater < standard.highWater && standard.highWater * 8 <= standard.hardCap)
        #expect(standard.stallTimeout == 10_000_000_000)
    }
}
