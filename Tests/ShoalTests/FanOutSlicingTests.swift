// The fan-out slicing decisions without sockets: events in (a message, a recipient served, a slice
// started or ended), decisions out (deliver now or queue, go on or stop, schedule a slice).
// (Every event mutates the machine, so each is taken before `#expect` looks at its answer.)
import Testing
@testable import Shoal

@Suite struct FanOutSlicingTests {
    private static let limits = FanOutSlicing.Limits(deliveriesPerSlice: 4, compressedDeliveryCost: 2, nanosecondsPerSlice: 1_000, maxQueued: 2)

    /// Whether the slice goes on after each recipient served at these times.
    private func serve(_ slicing: inout FanOutSlicing, at times: [UInt64], compressed: Bool = false) -> [Bool] {
        times.map { slicing.shouldContinue(now: $0, compressed: compressed) }
    }

    @Test func aSmallFanOutIsDeliveredAtOnceAndNothingIsScheduled() {
        var slicing = FanOutSlicing(limits: Self.limits)
        let arrival = slicing.messageArrived(turn: 1, now: 100)
        let goesOn = serve(&slicing, at: [110, 120])
        #expect(arrival == .deliverNow)
        #expect(goesOn == [true, true])
        #expect(slicing.queued == 0)
        #expect(!slicing.sliceScheduled)
    }

    @Test func aSliceStopsAfterItsRecipientsAndTheRestIsScheduledOnce() {
        var slicing = FanOutSlicing(limits: Self.limits)
        let first = slicing.messageArrived(turn: 1, now: 0)
        let firstSlice = serve(&slicing, at: [1, 2, 3, 4])
        let afterLeftOver = slicing.leftOver()
        #expect(first == .deliverNow)
        #expect(firstSlice == [true, true, true, false])
        #expect(afterLeftOver == .scheduleSlice)

        // The next message of the same turn waits behind it, with no second schedule.
        let second = slicing.messageArrived(turn: 1, now: 5)
        let afterQueueing = slicing.queuedMessage()
        #expect(second == .queue)
        #expect(afterQueueing == .none)
        #expect(slicing.queued == 2)

        // The scheduled slice gets a fresh budget in its own turn.
        slicing.sliceStarted(turn: 2, now: 50)
        #expect(!slicing.sliceScheduled)
        let secondSlice = serve(&slicing, at: [51, 52, 53, 54])
        slicing.finishedOldest()
        let afterSecondSlice = slicing.sliceEnded()
        #expect(secondSlice == [true, true, true, false])
        #expect(afterSecondSlice == .scheduleSlice)

        slicing.sliceStarted(turn: 3, now: 100)
        let thirdSlice = serve(&slicing, at: [101])
        slicing.finishedOldest()
        let afterThirdSlice = slicing.sliceEnded()
        #expect(thirdSlice == [true])
        #expect(afterThirdSlice == .none)
        #expect(slicing.queued == 0)
    }

    @Test func aSliceThatCompressesPerRecipientStopsWhenItsTimeIsSpent() {
        var slicing = FanOutSlicing(limits: Self.limits)
        _ = slicing.messageArrived(turn: 1, now: 10_000)
        let goesOn = serve(&slicing, at: [10_500, 11_000], compressed: true)
        #expect(goesOn == [true, false])
    }

    @Test func plainDeliveriesAreCountedNotTimed() {
        // Their cost is the kernel's, in the submit after the slice: the count bounds it.
        var slicing = FanOutSlicing(limits: Self.limits)
        _ = slicing.messageArrived(turn: 1, now: 0)
        let goesOn = serve(&slicing, at: [5_000, 10_000, 15_000, 20_000])
        #expect(goesOn == [true, true, true, false])
    }

    @Test func aCompressedDeliveryCountsForSeveralPlainOnes() {
        var slicing = FanOutSlicing(limits: Self.limits)
        _ = slicing.messageArrived(turn: 1, now: 0)
        let plain = serve(&slicing, at: [1])
        let compressed = serve(&slicing, at: [2], compressed: true)
        let last = serve(&slicing, at: [3])
        #expect(plain == [true])
        #expect(compressed == [true])  // 1 + 2 of 4
        #expect(last == [false])
    }

    @Test func messagesOfOneTurnShareItsBudget() {
        var slicing = FanOutSlicing(limits: Self.limits)
        _ = slicing.messageArrived(turn: 1, now: 0)
        let firstMessage = serve(&slicing, at: [1, 2])
        // A second small message in the same turn: delivered now, with what is left of the budget.
        let second = slicing.messageArrived(turn: 1, now: 3)
        let secondMessage = serve(&slicing, at: [3, 4])
        #expect(firstMessage == [true, true])
        #expect(second == .deliverNow)
        #expect(secondMessage == [true, false])

        // Its last recipient spent the budget and none is left over: the next message of the turn
        // still waits for a later one.
        let third = slicing.messageArrived(turn: 1, now: 5)
        let afterQueueing = slicing.queuedMessage()
        #expect(third == .queue)
        #expect(afterQueueing == .scheduleSlice)

        // A new turn with a message waiting: a newcomer queues behind it.
        let fourth = slicing.messageArrived(turn: 2, now: 10)
        #expect(fourth == .queue)
    }

    @Test func aFullQueueFinishesItsOldestBeforeTakingMore() {
        var slicing = FanOutSlicing(limits: Self.limits)
        _ = slicing.messageArrived(turn: 1, now: 0)
        _ = serve(&slicing, at: [1, 2, 3, 4])
        _ = slicing.leftOver()
        let second = slicing.messageArrived(turn: 1, now: 5)
        _ = slicing.queuedMessage()
        let third = slicing.messageArrived(turn: 1, now: 6)
        slicing.finishedOldest()
        let afterQueueing = slicing.queuedMessage()
        #expect(second == .queue)
        #expect(third == .finishOldestThenQueue)
        #expect(afterQueueing == .none)  // the slice scheduled for the first is still due
        #expect(slicing.queued == 2)
    }

    @Test func onceTheQueueIsEmptyMessagesAreDeliveredAtOnceAgain() {
        var slicing = FanOutSlicing(limits: Self.limits)
        _ = slicing.messageArrived(turn: 1, now: 0)
        _ = serve(&slicing, at: [1, 2, 3, 4])
        _ = slicing.leftOver()
        slicing.sliceStarted(turn: 2, now: 10)
        _ = serve(&slicing, at: [11])
        slicing.finishedOldest()
        let afterSlice = slicing.sliceEnded()
        // Later in the same turn, within the slice's budget, and in the next turn: at once.
        let sameTurn = slicing.messageArrived(turn: 2, now: 12)
        let nextTurn = slicing.messageArrived(turn: 3, now: 20)
        #expect(afterSlice == .none)
        #expect(sameTurn == .deliverNow)
        #expect(nextTurn == .deliverNow)
    }
}
